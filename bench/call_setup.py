"""Call set-up and steady state: tablet (aiortc) ⇄ browser, against browser ⇄ browser, same run.

    python -m bench.call_setup [--calls 5] [--seconds 20] [--late-setup-too] [--video-profile R]

Prints one JSON object. Both calls go through the whole system and differ in one thing only, the
peer in the tablet's role:

- **tablet call**: ``liens kiosk --headless --media synthetic`` (aiortc, 640×480 test pattern,
  440 Hz tone) dials; the relative's family page (Debian Chromium, fake camera and microphone)
  rings and answers.
- **browser-to-browser call**: the kiosk is stopped and a second Chromium page takes its place:
  this process connects to the broker with the tablet's own credentials (``kiosk.link.Link``) and
  relays each ``signal/in`` message to that page and its replies to ``signal/out``. The same
  family page rings and answers, over the same WebSocket, backend, broker and topics. The page
  does what the engine does: it opens its camera when it dials, creates its peer connection and
  gathers candidates (``iceCandidatePoolSize``) when the relative's page rings, answers the offer
  once gathering is complete (no trickle ICE, as docs/calls.md).

Both calls use the same definitions, measured on the same clock (Unix time; the page's
``performance.timeOrigin + performance.now()``):

- ``tap_to_ring_s``: the dial (the kiosk's ``call`` command, or the page's invite) → the family
  page receives ``incoming``;
- ``answer_to_first_frame_s``: the click on the family page's "Décrocher" (a capturing listener)
  → the first remote video frame **decoded**, on the tablet's side (aiortc's first decoded frame;
  the page's ``getStats().framesDecoded > 0``, polled every 5 ms) and on the family page;
- ``steps``: the same interval split at each step (offer sent and received, answer sent and
  received, ICE connected, DTLS connected, first RTP packet, first decoded frame);
- over ``--seconds`` of the last call: ``fps`` decoded on each side, the kiosk process's CPU
  (100 = one core), and for the baseline the whole browser's CPU divided by its two peers.

Each figure is the median over ``--calls`` calls of each kind; every call is listed too. The first
call of a fresh kiosk process also pays its one-off imports (docs/calls.md): the median leaves it
out, the list shows it. ``--late-setup-too`` runs the tablet calls again with
``LIENS_CALL_EARLY_SETUP=0`` (everything at the offer, as before); ``--video-profile`` pins the
tablet's video rung (by default the engine chooses and adapts it: see ``video_profile`` and
``profile_changes`` in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from playwright.sync_api import Page, sync_playwright

from kiosk.link import Link
from kiosk.settings import KioskSettings
from kiosk.store import Store
from tests.helpers import HeadlessKiosk, RunningBackend, running_backend

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

# Installed in every page before its own scripts: marks each step once per call, in Unix ms.
RECORDER_JS = """(() => {
  const now = () => performance.timeOrigin + performance.now();
  const marks = {};
  const mark = (k) => { if (!(k in marks)) marks[k] = now(); };
  window.__bench = { marks, mark, reset: () => { for (const k in marks) delete marks[k]; } };
  addEventListener('click', (e) => {
    if (e.target && e.target.closest && e.target.closest('#btn-answer')) mark('answer_click');
  }, true);
  const WS = window.WebSocket;
  window.WebSocket = function (...args) {
    const sock = new WS(...args);
    sock.addEventListener('message', (e) => {
      try { const m = JSON.parse(e.data); mark(m.type + '_received'); } catch (err) {}
    });
    const send = sock.send.bind(sock);
    sock.send = (data) => {
      try { const m = JSON.parse(data); mark(m.type + '_sent'); } catch (err) {}
      return send(data);
    };
    return sock;
  };
  window.WebSocket.prototype = WS.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  const PC = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends PC {
    constructor(...args) {
      super(...args);
      this.addEventListener('iceconnectionstatechange', () => {
        if (['connected', 'completed'].includes(this.iceConnectionState)) mark('ice_connected');
      });
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'connected') mark('dtls_connected');
      });
      this.addEventListener('track', (e) => {
        if (e.track.kind !== 'video') return;
        const poll = async () => {
          if (this.connectionState === 'closed') return;
          let rtp = 0, frames = 0;
          (await this.getStats()).forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') {
              rtp = r.packetsReceived || 0; frames = r.framesDecoded || 0;
            }
          });
          if (rtp > 0) mark('first_rtp');
          if (frames > 0) { mark('first_frame'); return; }
          setTimeout(poll, 5);
        };
        poll();
      });
    }
  };
})();"""

STATS_JS = """async (pc) => {
  if (!pc) return {frames: 0, width: 0, height: 0, fps: 0};
  let out = {frames: 0, width: 0, height: 0, fps: 0};
  (await pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out = {frames: r.framesDecoded || 0, width: r.frameWidth || 0,
             height: r.frameHeight || 0, fps: r.framesPerSecond || 0};
    }
  });
  return out;
}"""

# The peer in the tablet's role, for the baseline.
PEER_HTML = """<!doctype html><html><body><video id=v autoplay playsinline muted></video>
<script>
window.peer = {
  stream: null, pc: null,
  async openMedia() {
    this.stream = await navigator.mediaDevices.getUserMedia({audio: true,
      video: {width: 640, height: 480, frameRate: 30}});
    window.__bench.mark('media_ready');
  },
  createPc(iceServers) {
    this.pc = new RTCPeerConnection({iceServers, iceCandidatePoolSize: 1});
    this.pc.ontrack = (e) => { document.getElementById('v').srcObject = e.streams[0]; };
  },
  async answer(sdp) {
    window.__bench.mark('offer_received');
    if (!this.pc) this.createPc([]);
    this.stream.getTracks().forEach((t) => this.pc.addTrack(t, this.stream));
    await this.pc.setRemoteDescription({type: 'offer', sdp});
    window.__bench.mark('remote_set');
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    if (this.pc.iceGatheringState !== 'complete') {
      await new Promise((ok) => this.pc.addEventListener('icegatheringstatechange',
        () => this.pc.iceGatheringState === 'complete' && ok()));
    }
    window.__bench.mark('answer_sent');  // handed to this process, published at once
    return this.pc.localDescription.sdp;
  },
  close() {
    if (this.pc) this.pc.close();
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.pc = null; this.stream = null;
  },
};
</script></body></html>"""

FAMILY_STEPS = ("offer_sent", "answer_received", "ice_connected", "dtls_connected", "first_rtp")
TABLET_STEPS = (
    "offer_received",
    "remote_set",
    "answer_sent",
    "ice_connected",
    "dtls_connected",
    "first_rtp",
)


def _marks(page: Page) -> dict[str, float]:
    """The page's marks, in Unix seconds."""
    return {k: v / 1000 for k, v in dict(page.evaluate("() => window.__bench.marks")).items()}


def _wait(page: Page, expression: str, timeout_s: float = 20.0) -> None:
    page.wait_for_function(expression, polling=10, timeout=timeout_s * 1000)


def _wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def _steps(start: float, marks: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    return {n: round(marks[n] - start, 3) for n in names if n in marks}


def _family_ready(page: Page) -> None:
    """The family page is back to its list, online, with the resident callable."""
    _wait(
        page,
        "() => window.liensCall && window.liensCall.online && "
        "['idle', 'ended'].includes(window.liensCall.state) && "
        "document.querySelector('.btn-call:not([disabled])') !== null",
    )


def _answer(page: Page) -> None:
    # A DOM click, the same in both calls (no actionability waits in the measured interval).
    page.evaluate("() => document.getElementById('btn-answer').click()")


def _chromium_processes(browser_pid: int) -> list[psutil.Process]:
    root = psutil.Process(browser_pid)
    return [root, *root.children(recursive=True)]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


# -- the tablet call ---------------------------------------------------------------------------


def tablet_calls(
    b: RunningBackend, page: Page, kiosk: HeadlessKiosk, approval_id: str, n: int, seconds: float
) -> dict[str, Any]:
    def command(**cmd: Any) -> None:
        assert kiosk.proc.stdin is not None
        kiosk.proc.stdin.write(json.dumps(cmd) + "\n")
        kiosk.proc.stdin.flush()

    def kiosk_stats() -> dict[str, Any]:
        command(cmd="stats")
        return kiosk.wait_for(lambda e: e["event"] == "stats", 10)

    calls = []
    steady: dict[str, Any] = {}
    for i in range(n):
        _family_ready(page)
        page.evaluate("() => window.__bench.reset()")
        tapped = time.time()
        command(cmd="call", approval_id=approval_id)
        _wait(page, "() => window.liensCall.state === 'ringing'")
        time.sleep(0.3)  # the relative looks at the page before answering
        _answer(page)
        _wait(page, "() => 'first_frame' in window.__bench.marks")
        stats = _wait_for(
            lambda: (s := kiosk_stats()).get("timeline", {}).get("first_frame") and s,
            20,
            "the tablet's first frame",
        )
        fam = _marks(page)
        tl = stats["timeline"]
        answered = fam["answer_click"]
        calls.append(
            {
                "tap_to_ring_s": round(fam["incoming_received"] - tapped, 3),
                "answer_to_first_frame_s": {
                    "tablet": round(tl["first_frame"] - answered, 3),
                    "browser": round(fam["first_frame"] - answered, 3),
                },
                "steps": {
                    "family_page": _steps(answered, fam, FAMILY_STEPS),
                    "tablet": _steps(answered, tl, TABLET_STEPS),
                },
                "tablet_prepared_before_answer": {
                    k: tl[k] < answered for k in ("media_ready", "pc_ready") if k in tl
                },
                "video_profile": stats.get("video_profile"),
            }
        )
        if i == n - 1:
            proc = psutil.Process(kiosk.proc.pid)
            pc_expr = "window.liensCall.pc"
            cpu0, k0, t0 = sum(proc.cpu_times()[:2]), kiosk_stats(), time.monotonic()
            b0 = page.evaluate(f"async () => ({STATS_JS})({pc_expr})")
            time.sleep(seconds)
            cpu1, k1, t1 = sum(proc.cpu_times()[:2]), kiosk_stats(), time.monotonic()
            b1 = page.evaluate(f"async () => ({STATS_JS})({pc_expr})")
            elapsed = t1 - t0
            steady = {
                "fps": {
                    "tablet": round((k1["frames_decoded"] - k0["frames_decoded"]) / elapsed, 1),
                    "browser": round((b1["frames"] - b0["frames"]) / elapsed, 1),
                },
                "resolution": {
                    "tablet_receives": [k1.get("width"), k1.get("height")],
                    "browser_receives": [b1["width"], b1["height"]],
                },
                "kiosk_cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 1),
                "profile_changes": k1.get("profile_changes"),
            }
        command(cmd="hangup")
        kiosk.wait_for(lambda e: e["event"] == "call" and e["state"] == "ended", 10)
    return _summary(calls, "tablet", steady)


# -- the browser-to-browser call ---------------------------------------------------------------


def browser_calls(
    b: RunningBackend,
    page: Page,
    peer: Page,
    data_dir: Path,
    approval_id: str,
    n: int,
    seconds: float,
    browser_pid: int,
) -> dict[str, Any]:
    credentials = KioskSettings(data_dir=data_dir).load_credentials()
    assert credentials is not None, "the kiosk left no credentials"
    signals: queue.Queue[dict[str, Any]] = queue.Queue()

    def listener(event: dict[str, Any]) -> None:
        if event.get("event") == "signal" and isinstance(event.get("data"), dict):
            signals.put(event["data"])

    link = Link(credentials, Store(data_dir / "shim.db"), app_version="bench", listener=listener)
    link.start()
    try:
        assert link.wait_connected(20), "the shim could not connect to the broker"
        calls = []
        steady: dict[str, Any] = {}
        for i in range(n):
            _family_ready(page)
            for p in (page, peer):
                p.evaluate("() => window.__bench.reset()")
            call_id = uuid.uuid4().hex
            tapped = time.time()
            link.send_signal({"kind": "invite", "call_id": call_id, "approval_id": approval_id})
            peer.evaluate("() => window.peer.openMedia()")  # as the engine: media at the dial
            answered_sent = False
            ring_deadline = time.monotonic() + 20
            while not answered_sent:
                if time.monotonic() > ring_deadline:
                    raise TimeoutError("the baseline call did not connect")
                try:
                    data = signals.get(timeout=0.01)
                except queue.Empty:
                    data = None
                if data is not None and data.get("call_id") == call_id:
                    kind = data.get("kind")
                    if kind == "ringing":
                        # As the engine: gather while the relative's page rings.
                        peer.evaluate(
                            "(s) => window.peer.createPc(s)", data.get("ice_servers") or []
                        )
                        _wait(page, "() => window.liensCall.state === 'ringing'")
                        time.sleep(0.3)
                        _answer(page)
                    elif kind == "offer":
                        sdp = peer.evaluate("(s) => window.peer.answer(s)", data["sdp"])
                        link.send_signal({"kind": "answer", "call_id": call_id, "sdp": sdp})
                        answered_sent = True
                    elif kind == "hangup":
                        raise RuntimeError(f"the baseline call was refused: {data}")
            _wait(page, "() => 'first_frame' in window.__bench.marks")
            _wait(peer, "() => 'first_frame' in window.__bench.marks")
            fam, tl = _marks(page), _marks(peer)
            answered = fam["answer_click"]
            calls.append(
                {
                    "tap_to_ring_s": round(fam["incoming_received"] - tapped, 3),
                    "answer_to_first_frame_s": {
                        "tablet": round(tl["first_frame"] - answered, 3),
                        "browser": round(fam["first_frame"] - answered, 3),
                    },
                    "steps": {
                        "family_page": _steps(answered, fam, FAMILY_STEPS),
                        "tablet": _steps(answered, tl, TABLET_STEPS),
                    },
                }
            )
            if i == n - 1:
                procs = _chromium_processes(browser_pid)
                expr = f"async () => ({STATS_JS})(window.peer.pc)"
                fexpr = f"async () => ({STATS_JS})(window.liensCall.pc)"
                cpu0, p0, f0, t0 = (
                    _cpu_seconds(procs),
                    peer.evaluate(expr),
                    page.evaluate(fexpr),
                    time.monotonic(),
                )
                time.sleep(seconds)
                cpu1, p1, f1, t1 = (
                    _cpu_seconds(procs),
                    peer.evaluate(expr),
                    page.evaluate(fexpr),
                    time.monotonic(),
                )
                elapsed = t1 - t0
                steady = {
                    "fps": {
                        "tablet": round((p1["frames"] - p0["frames"]) / elapsed, 1),
                        "browser": round((f1["frames"] - f0["frames"]) / elapsed, 1),
                    },
                    "resolution": {
                        "tablet_receives": [p1["width"], p1["height"]],
                        "browser_receives": [f1["width"], f1["height"]],
                    },
                    "browser_cpu_percent_per_peer": round(100 * (cpu1 - cpu0) / elapsed / 2, 1),
                }
            link.send_signal({"kind": "hangup", "call_id": call_id, "reason": "hung_up"})
            peer.evaluate("() => window.peer.close()")
            _wait(page, "() => window.liensCall.state !== 'connected'")
    finally:
        link.stop()
    return _summary(calls, "tablet", steady)


def _summary(calls: list[dict[str, Any]], side: str, steady: dict[str, Any]) -> dict[str, Any]:
    def med(*path: str) -> float | None:
        values = []
        for c in calls:
            v: Any = c
            for key in path:
                v = v.get(key) if isinstance(v, dict) else None
            if isinstance(v, int | float):
                values.append(float(v))
        return _median(values)

    steps = {
        who: {
            name: med("steps", who, name)
            for name in (FAMILY_STEPS if who == "family_page" else TABLET_STEPS)
        }
        for who in ("family_page", "tablet")
    }
    return {
        "median": {
            "tap_to_ring_s": med("tap_to_ring_s"),
            "answer_to_first_frame_s": {
                "tablet": med("answer_to_first_frame_s", "tablet"),
                "browser": med("answer_to_first_frame_s", "browser"),
            },
            "steps": steps,
        },
        "steady": steady,
        "calls": calls,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument(
        "--late-setup-too",
        action="store_true",
        help="also run the tablet calls with LIENS_CALL_EARLY_SETUP=0 (all set-up at the offer)",
    )
    parser.add_argument(
        "--video-profile",
        default="auto",
        help="pin the tablet's video rung (e.g. 640x480@30); auto: the engine chooses",
    )
    args = parser.parse_args(argv)
    late: dict[str, Any] | None = None
    os.environ["LIENS_VIDEO_PROFILE"] = args.video_profile  # the kiosk inherits it
    with (
        tempfile.TemporaryDirectory(prefix="liens-bench-") as tmp,
        sync_playwright() as pw,
        running_backend(Path(tmp) / "server") as b,
    ):
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        browser_pid = _find_chromium()
        ids = b.seed()
        resident, contact = ids["residents"][0], ids["contacts"][0]
        b.approve(resident, contact)
        data_dir = Path(tmp) / "kiosk"
        kiosk = HeadlessKiosk(
            data_dir, b.base_url, code=b.issue_code(ids["tablet"]), extra=["--media", "synthetic"]
        )
        try:
            context = browser.new_context(locale="fr-FR")
            context.add_init_script(RECORDER_JS)
            page = context.new_page()
            config = kiosk.wait_for(lambda e: e["event"] == "config" and e["contacts"], 20)
            approval_id = config["contacts"][0]["approval_id"]
            page.goto(f"{b.base_url}/f/{ids['tokens'][0]}")
            tablet = tablet_calls(b, page, kiosk, approval_id, args.calls, args.seconds)
        finally:
            kiosk.stop()
        if args.late_setup_too:
            os.environ["LIENS_CALL_EARLY_SETUP"] = "0"  # the kiosk inherits it
            kiosk = HeadlessKiosk(data_dir, b.base_url, extra=["--media", "synthetic"])
            try:
                kiosk.wait_for(lambda e: e["event"] == "config" and e["contacts"], 20)
                late = tablet_calls(b, page, kiosk, approval_id, args.calls, args.seconds)
            finally:
                kiosk.stop()
                del os.environ["LIENS_CALL_EARLY_SETUP"]
        try:
            peer_context = browser.new_context()
            peer_context.add_init_script(RECORDER_JS)
            peer = peer_context.new_page()
            # A loopback origin (a secure context, so getUserMedia exists), served by Playwright.
            peer.route(
                "http://127.0.0.1:9/peer",
                lambda route: route.fulfill(body=PEER_HTML, content_type="text/html"),
            )
            peer.goto("http://127.0.0.1:9/peer")
            baseline = browser_calls(
                b, page, peer, data_dir, approval_id, args.calls, args.seconds, browser_pid
            )
        finally:
            browser.close()
    t_med, b_med = tablet["median"], baseline["median"]
    result = {
        "bench": "call_setup",
        "calls": args.calls,
        "seconds": args.seconds,
        "tablet_call": tablet,
        "browser_to_browser": baseline,
        **({"tablet_call_late_setup": late} if late is not None else {}),
        "ratios": {
            "answer_to_first_frame_tablet_side": _ratio(
                t_med["answer_to_first_frame_s"]["tablet"],
                b_med["answer_to_first_frame_s"]["tablet"],
            ),
            "answer_to_first_frame_browser_side": _ratio(
                t_med["answer_to_first_frame_s"]["browser"],
                b_med["answer_to_first_frame_s"]["browser"],
            ),
            **(
                {
                    "answer_to_first_frame_tablet_side_late_setup": _ratio(
                        late["median"]["answer_to_first_frame_s"]["tablet"],
                        b_med["answer_to_first_frame_s"]["tablet"],
                    )
                }
                if late is not None
                else {}
            ),
            "tap_to_ring": _ratio(t_med["tap_to_ring_s"], b_med["tap_to_ring_s"]),
            "fps_tablet_side": _ratio(
                tablet["steady"].get("fps", {}).get("tablet"),
                baseline["steady"].get("fps", {}).get("tablet"),
            ),
            "cpu_kiosk_vs_browser_peer": _ratio(
                tablet["steady"].get("kiosk_cpu_percent"),
                baseline["steady"].get("browser_cpu_percent_per_peer"),
            ),
        },
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def _find_chromium() -> int:
    """The browser process (the Chromium whose parent is not a Chromium)."""
    for p in psutil.Process().children(recursive=True):
        with_parent = p.parent()
        if "chrom" in p.name() and (with_parent is None or "chrom" not in with_parent.name()):
            return int(p.pid)
    raise RuntimeError("Chromium's process was not found")


if __name__ == "__main__":
    sys.exit(main())
