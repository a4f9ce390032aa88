"""Real video calls, both ways: Debian Chromium on the family page ⇄ backend ⇄ real Mosquitto ⇄
the kiosk core (``liens kiosk --headless``) with a synthetic camera and microphone.

Each side must decode at least 50 video frames and receive audio; a hang-up from either side
ends both; the call log rows are right; a pair outside its window rings nobody.

Issue 3 asks that a hang-up end both sides within 2 s. The test prints how long it took and
fails only past ``END_DEADLINE_S``: on a loaded 2-core CI machine a correct hang-up has been
seen to take longer than 2 s, while a hang-up that is lost only ends the call through ICE
consent expiry (about 30 s), far beyond the deadline. ``bench/call_setup.py`` is where the
figure belongs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from backend.models import Call
from backend.services.directory import find_approval
from tests.browser.screens import Screenshots
from tests.helpers import HeadlessKiosk, RunningBackend, running_backend

END_DEADLINE_S = 10.0  # see the module's docstring
FAR_AWAY_DAY = (datetime.now(ZoneInfo("Europe/Paris")).weekday() + 3) % 7
CLOSED_NOW = {"windows": [{"days": [FAR_AWAY_DAY], "start": "14:00", "end": "18:00"}]}

STATS_JS = """async () => {
  const pc = window.liensCall && window.liensCall.pc;
  if (!pc) return null;
  const out = {video_frames: 0, audio_packets: 0, video_sent: 0};
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') out.video_frames = r.framesDecoded || 0;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') out.audio_packets = r.packetsReceived || 0;
    if (r.type === 'outbound-rtp' && r.kind === 'video') out.video_sent = r.framesEncoded || 0;
  });
  return out;
}"""


class Kiosk(HeadlessKiosk):
    """The headless kiosk, driven through its stdin commands."""

    def __init__(self, data_dir: Path, server_url: str, code: str) -> None:
        super().__init__(data_dir, server_url, code=code, extra=["--media", "synthetic"])

    def command(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def call_state(self, state: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.wait_for(lambda e: e["event"] == "call" and e["state"] == state, timeout)

    def stats(self) -> dict[str, Any]:
        self.command(cmd="stats")
        return self.wait_for(lambda e: e["event"] == "stats", 15)


@pytest.fixture
def system(tmp_path: Path, mosquitto_broker: Any, browser: Any) -> Iterator[dict[str, Any]]:
    with running_backend(tmp_path / "server", mqtt_url=mosquitto_broker.url) as b:
        ids = b.seed(contacts=2)
        resident = ids["residents"][0]
        b.approve(resident, ids["contacts"][0])
        b.approve(resident, ids["contacts"][1], policy=CLOSED_NOW)
        kiosk = Kiosk(tmp_path / "kiosk", b.base_url, b.issue_code(ids["tablet"]))
        # The kiosk's first config: its process starting, enrolment, MQTT (a deadline: the
        # default 10 s is less than the 20 s seen too short for the same step in another test on a
        # loaded machine).
        kiosk.wait_for(lambda e: e["event"] == "config" and len(e["contacts"]) == 2, 60)
        _wait_online(b, ids["tablet"])
        context = browser.new_context(viewport={"width": 412, "height": 860}, locale="fr-FR")
        page = context.new_page()
        try:
            yield {"backend": b, "ids": ids, "resident": resident, "kiosk": kiosk, "page": page}
        finally:
            context.close()
            kiosk.stop()


def _wait_online(b: RunningBackend, tablet_id: str) -> None:
    from backend.models import Tablet

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with b.db.session() as s:
            tablet = s.get(Tablet, tablet_id)
            if tablet is not None and tablet.online:
                return
        time.sleep(0.05)
    raise AssertionError("the tablet never came online")


def _approval(b: RunningBackend, resident: str, contact: str) -> str:
    with b.db.session() as s:
        approval = find_approval(s, resident, contact)
        assert approval is not None
        return approval.id


def _browser_frames(page: Any, at_least: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        stats = page.evaluate(STATS_JS)
        if stats and stats["video_frames"] >= at_least and stats["audio_packets"] > 0:
            return stats
        time.sleep(0.2)
    raise AssertionError(f"the browser decoded too little: {stats}")


def _kiosk_frames(kiosk: Kiosk, at_least: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = kiosk.stats()
        call_stats = stats.get("stats") or stats
        if call_stats.get("frames_decoded", 0) >= at_least and call_stats.get("audio_frames", 0):
            return call_stats
        time.sleep(0.3)
    raise AssertionError(f"the kiosk decoded too little: {stats}")


def _kiosk_audio(kiosk: Kiosk, timeout: float = 20.0) -> dict[str, Any]:
    """The call's audio chain counters once both directions went through it."""
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        stats = kiosk.stats()
        call_stats = stats.get("stats") or stats
        audio = call_stats.get("audio_path") or {}
        if call_stats.get("audio_processed", 0) > 0 and audio.get("far_frames", 0) > 0:
            return {**audio, "audio_processed": call_stats["audio_processed"]}
        time.sleep(0.3)
    raise AssertionError(f"the kiosk's audio chain processed nothing: {stats}")


def _page_state(page: Any) -> str:
    return str(page.evaluate("() => window.liensCall && window.liensCall.state"))


def _wait_page_state(page: Any, states: tuple[str, ...], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _page_state(page) in states:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"page stayed in {_page_state(page)!r}, expected {states}")


def _call_rows(b: RunningBackend) -> list[Call]:
    deadline = time.monotonic() + 5
    while True:
        with b.db.session() as s:
            rows = list(s.scalars(select(Call).order_by(Call.created_at)))
        if all(r.end_at is not None for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_real_calls_both_ways_between_chromium_and_the_kiosk(
    system: dict[str, Any], shots: Screenshots
) -> None:
    b: RunningBackend = system["backend"]
    kiosk: Kiosk = system["kiosk"]
    page = system["page"]
    ids = system["ids"]
    page.goto(f"{b.base_url}/f/{ids['tokens'][0]}")
    call_button = page.locator(f'[data-resident-id="{system["resident"]}"] .btn-call')
    call_button.wait_for(state="visible", timeout=10_000)
    assert call_button.is_enabled()

    # 1. The relative calls; the tablet rings; the resident answers.
    call_button.click()
    incoming = kiosk.call_state("incoming")
    assert incoming["contact_name"] == "Julie"
    kiosk.command(cmd="answer")
    kiosk.call_state("connected")
    browser_stats = _browser_frames(page, 50)
    kiosk_stats = _kiosk_frames(kiosk, 50)
    # The tablet's audio chain (docs/audio.md) is in the call: its microphone (the synthetic
    # tone) goes through the echo canceller into the call, and the relative's voice goes to the
    # speaker and to the canceller as its reference.
    audio = _kiosk_audio(kiosk)
    assert audio["audio_processed"] > 0 and audio["frames"] > 0 and audio["far_frames"] > 0
    assert audio["echo_cancel"] == "app" and audio["device"] is False
    # The browser's camera, as Chromium sends it: 640×480, or a 4:3 step down when the
    # tablet's profile (chosen from a CPU probe) or Chromium's own CPU adaptation asks for less
    # on a loaded machine.
    width, height = kiosk_stats["width"], kiosk_stats["height"]
    assert 160 <= width <= 640 and width * 3 == height * 4, (width, height)
    assert browser_stats["video_sent"] > 0
    shots(page, "family-call-e2e")
    # The relative hangs up: the tablet is idle again (2 s is the target: see the module doc).
    started = time.monotonic()
    page.locator("#btn-hangup").click()
    ended = kiosk.call_state("ended", timeout=END_DEADLINE_S)
    hangup_s = time.monotonic() - started
    assert ended["reason"] in ("hung_up", "cancelled")

    # 2. The resident calls; the page rings; the relative answers.
    _wait_page_state(page, ("idle", "ended"), 15)
    page.locator("#btn-back").click() if page.locator("#btn-back").is_visible() else None
    approval_id = _approval(b, system["resident"], ids["contacts"][0])
    kiosk.command(cmd="call", approval_id=approval_id)
    kiosk.call_state("dialling")
    _wait_page_state(page, ("ringing",), 20)
    page.locator("#btn-answer").click()
    kiosk.call_state("connected")
    _browser_frames(page, 50)
    _kiosk_frames(kiosk, 50)
    # The resident hangs up: the page leaves the call.
    kiosk.command(cmd="hangup")
    took = _wait_page_state(page, ("ended", "idle"), END_DEADLINE_S)
    print(  # noqa: T201 - figures for the report
        f"\nhang-up: relative -> tablet ended {hangup_s:.2f} s, tablet -> page ended {took:.2f} s"
    )

    rows = _call_rows(b)
    assert [(r.direction, r.outcome, r.ended_by) for r in rows] == [
        ("to_resident", "completed", "contact"),
        ("from_resident", "completed", "resident"),
    ]
    for row in rows:
        assert row.ring_at and row.answer_at and row.end_at and row.duration_s is not None
        assert row.tablet_id == ids["tablet"]


def test_outside_its_window_neither_side_rings(system: dict[str, Any]) -> None:
    b: RunningBackend = system["backend"]
    kiosk: Kiosk = system["kiosk"]
    page = system["page"]
    ids = system["ids"]
    page.goto(f"{b.base_url}/f/{ids['tokens'][1]}")
    person = page.locator(f'[data-resident-id="{system["resident"]}"]')
    availability = person.locator(".availability")
    availability.wait_for(state="visible", timeout=10_000)
    assert "prochain créneau" in availability.inner_text()
    assert person.locator(".btn-call").is_disabled()
    # The tablet refuses to dial Thomas by its own cached policy; the page never rings.
    kiosk.command(cmd="call", approval_id=_approval(b, system["resident"], ids["contacts"][1]))
    refused = kiosk.wait_for(lambda e: e["event"] == "call_refused", 15)
    assert refused["reason"] == "policy"
    time.sleep(0.5)
    assert _page_state(page) == "idle"
    assert _call_rows(b) == []
