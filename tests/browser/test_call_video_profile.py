"""The video profile the engine chooses is what the relative's browser receives.

``liens kiosk --headless`` starts with an injected probe (``LIENS_VIDEO_PROBE``: the encoder
times a slower tablet would measure), dials, and the family page in Debian Chromium answers.
The call must connect, and the browser's ``getStats()`` must show the resolution, the frame rate
ceiling and the codec of the profile the kiosk reports in its call stats.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import HeadlessKiosk, RunningBackend, running_backend

INBOUND_VIDEO_JS = """async () => {
  const pc = window.liensCall && window.liensCall.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  let out = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      const codec = r.codecId && report.get(r.codecId);
      out = {frames: r.framesDecoded || 0, width: r.frameWidth || 0, height: r.frameHeight || 0,
             codec: codec ? codec.mimeType : null};
    }
  });
  return out;
}"""


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[RunningBackend, dict[str, Any]]]:
    with running_backend(tmp_path / "server") as b:
        ids = b.seed()
        b.approve(ids["residents"][0], ids["contacts"][0])
        yield b, ids


def _command(kiosk: HeadlessKiosk, **cmd: Any) -> None:
    assert kiosk.proc.stdin is not None
    kiosk.proc.stdin.write(json.dumps(cmd) + "\n")
    kiosk.proc.stdin.flush()


def _kiosk_stats(kiosk: HeadlessKiosk) -> dict[str, Any]:
    _command(kiosk, cmd="stats")
    return kiosk.wait_for(lambda e: e["event"] == "stats", 10)


def _inbound(page: Any, at_least: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats = None
    while time.monotonic() < deadline:
        stats = page.evaluate(INBOUND_VIDEO_JS)
        if stats and stats["frames"] >= at_least:
            return dict(stats)
        time.sleep(0.2)
    raise AssertionError(f"the browser decoded too little: {stats}")


@pytest.mark.parametrize(
    ("probe", "profile", "codec"),
    [
        # A Raspberry Pi 4 class machine: ~30 ms per VGA frame in VP8.
        ({"vp8_ms": 30, "cores": 4}, "480x360@15", "video/VP8"),
        # Slow VP8 but quick H.264: H.264 holds VGA at 30 fps, so it goes first.
        ({"vp8_ms": 30, "cores": 4, "h264_ms": 10}, "640x480@30", "video/H264"),
    ],
)
def test_the_browser_receives_the_profile_the_engine_chose(
    backend: tuple[RunningBackend, dict[str, Any]],
    browser: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    probe: dict[str, Any],
    profile: str,
    codec: str,
) -> None:
    b, ids = backend
    monkeypatch.delenv("LIENS_VIDEO_PROFILE", raising=False)
    monkeypatch.setenv("LIENS_VIDEO_PROBE", json.dumps(probe))  # the kiosk inherits it
    kiosk = HeadlessKiosk(
        tmp_path / "kiosk",
        b.base_url,
        code=b.issue_code(ids["tablet"]),
        extra=["--media", "synthetic"],
    )
    context = browser.new_context(locale="fr-FR")
    try:
        config = kiosk.wait_for(lambda e: e["event"] == "config" and e["contacts"], 20)
        page = context.new_page()
        page.goto(f"{b.base_url}/f/{ids['tokens'][0]}")
        page.wait_for_function("() => window.liensCall && window.liensCall.online", timeout=20_000)
        _command(kiosk, cmd="call", approval_id=config["contacts"][0]["approval_id"])
        page.wait_for_function("() => window.liensCall.state === 'ringing'", timeout=20_000)
        page.locator("#btn-answer").click()
        kiosk.wait_for(lambda e: e["event"] == "call" and e["state"] == "connected", 20)

        first = _inbound(page, 10)
        chosen = _kiosk_stats(kiosk)["video_profile"]
        assert chosen["name"] == profile and chosen["source"] == "injected"
        assert chosen["probe"]["vp8_ms"] == probe["vp8_ms"]
        assert first["codec"] == codec

        # Count frames over a few seconds: the size is the profile's current one (a busy machine
        # may have stepped down meanwhile), and a 15 fps profile lets clearly fewer than the
        # synthetic camera's 30 a second through (a margin for frames caught up after a stall).
        t0, f0 = time.monotonic(), first["frames"]
        time.sleep(3.0)
        later = _inbound(page, f0 + 1)
        fps = (later["frames"] - f0) / (time.monotonic() - t0)
        now = _kiosk_stats(kiosk)["video_profile"]
        assert (later["width"], later["height"]) == (now["width"], now["height"])
        assert fps > 0
        if chosen["fps"] < 30:
            assert fps < 25, fps
        _command(kiosk, cmd="hangup")
        kiosk.wait_for(lambda e: e["event"] == "call" and e["state"] == "ended", 10)
    finally:
        context.close()
        kiosk.stop()
