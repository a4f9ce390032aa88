"""The call engine: one asyncio loop in a daemon thread owning the call, its peer connection and
its media.

Inputs arrive from other threads — signal dicts from the link (paho's thread), actions from the
screens — and are scheduled on the engine's loop; nothing here blocks its caller except the
tablet's own checks in :meth:`CallEngine.start_call`, which must answer at once. Outputs are
signal dicts handed to ``send_signal`` (the link's ``signal/out``), ``call`` events handed to
``emit`` (the core's listener) and usage events handed to ``record`` (the durable outbox).

The signalling is docs/calls.md: the browser always offers (ICE gathering complete), the tablet
answers once its own gathering is complete. One call at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from kiosk import policy
from kiosk.calls import media as call_media
from kiosk.calls import video_profile
from kiosk.calls.adaptive_video import AdaptiveVideoTrack
from kiosk.calls.model import (
    RINGING_STATES,
    Accept,
    Accepted,
    CallState,
    CallWarning,
    Decline,
    Direction,
    EndReason,
    Hangup,
    Invite,
    Offer,
    PinError,
    Ringing,
    SignalError,
    SignalMessage,
    StaffEnd,
    Supervise,
    Supervised,
    Supervision,
    Wire,
    parse_signal,
)
from kiosk.calls.model import Answer as AnswerSignal
from kiosk.calls.state import CallInfo, CallRefused, CallStats, LatestFrame

log = logging.getLogger(__name__)

SignalSender = Callable[[dict[str, Any]], None]
Emitter = Callable[[dict[str, Any]], None]
Recorder = Callable[[str, dict[str, Any]], Any]
ConfigSource = Callable[[], "dict[str, Any] | None"]

RING_TIMEOUT_S = 45.0
# Accepted but no offer, or an offer but no media: the relative's page vanished.
CONNECT_TIMEOUT_S = 30.0
# pc.close() is quick on a healthy connection; never let a stuck transport delay the hang-up.
CLOSE_TIMEOUT_S = 1.0
REMOTE_CLOSE_GRACE_S = 0.5
STATS_INTERVAL_S = 1.0
# Supervised calls (policy ``supervised``): the call waits in CallState.SUPERVISING, before its
# invite goes out (outgoing) or its accept (incoming), until the backend says a staff PIN typed
# here is right.
MAX_PIN_ATTEMPTS = 3
# How long the keypad waits for a member of staff before an outgoing call is given up.
SUPERVISE_TIMEOUT_S = 180.0
# How long a typed PIN waits for the backend's word before the keypad asks again.
PIN_ANSWER_TIMEOUT_S = 10.0
# The in-call warning comes this many "minutes" before ``max_duration_min``.
WARNING_BEFORE_MIN = 1
# The first call's one-off costs (video probe, imports) are paid this long after start.
WARM_UP_AFTER_S = 3.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Call:
    """The engine's private, mutable record of the current call (only the loop mutates it)."""

    call_id: str
    approval_id: str
    resident_id: str
    contact_name: str
    direction: Direction
    state: CallState
    policy: dict[str, Any]
    auto_answer_s: int | None
    started_at: datetime
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    reason: EndReason | None = None
    connected_at: datetime | None = None
    answered_mono: float | None = None
    offer_mono: float | None = None
    pc: RTCPeerConnection | None = None
    media: call_media.LocalMedia | None = None
    # Set-up done ahead of the answer (docs/calls.md "Where the time goes"): the peer connection
    # with its transceivers and gathered candidates, and the opened camera and microphone.
    pc_task: asyncio.Task[RTCPeerConnection | None] | None = None
    media_task: asyncio.Task[call_media.LocalMedia | None] | None = None
    video_choice: video_profile.Choice | None = None
    stats: CallStats = field(default_factory=CallStats)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    supervised: bool = False  # the policy wants a staff PIN before the call starts
    supervision: Supervision | None = None
    supervisor: str = ""  # the staff member's name, once their PIN was right
    pin_attempts_left: int = MAX_PIN_ATTEMPTS
    pin_error: PinError | None = None  # after the last PIN
    pins_sent: int = 0
    warning: CallWarning | None = None  # before max_duration_min
    ended_by: StaffEnd | None = None  # when the call was ended for the resident

    @property
    def ended(self) -> bool:
        return self.state == CallState.ENDED

    def info(self) -> CallInfo:
        return CallInfo(
            call_id=self.call_id,
            approval_id=self.approval_id,
            resident_id=self.resident_id,
            contact_name=self.contact_name,
            direction=self.direction,
            state=self.state,
            reason=self.reason,
            auto_answer_s=self.auto_answer_s,
            started_at=self.started_at,
            connected_at=self.connected_at,
        )


def find_approval(
    config: dict[str, Any] | None, approval_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (resident, contact) pair of ``approval_id`` in the cached configuration, if any."""
    if not config:
        return None
    for resident in config.get("residents") or []:
        for contact in resident.get("contacts") or []:
            if contact.get("approval_id") == approval_id:
                return resident, contact
    return None


def ice_servers_from(raw: Any) -> list[RTCIceServer]:
    """RTCIceServer objects from the signalling's dicts (urls, username, credential)."""
    servers = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict) or not entry.get("urls"):
            continue
        servers.append(
            RTCIceServer(
                urls=entry["urls"],
                username=entry.get("username"),
                credential=entry.get("credential"),
            )
        )
    return servers


class CallEngine:
    """One call at a time between this tablet and a relative's browser."""

    def __init__(
        self,
        *,
        send_signal: SignalSender,
        emit: Emitter,
        record: Recorder,
        config: ConfigSource,
        remote_video: LatestFrame | None = None,
        local_video: LatestFrame | None = None,
        media: str = "auto",
        answer: str = "manual",
        ring_timeout_s: float = RING_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        audio_sink: call_media.AudioSink | None = None,
        now: Callable[[], datetime] = _utcnow,
        seconds_per_minute: float = 60.0,
        supervise_timeout_s: float = SUPERVISE_TIMEOUT_S,
        pin_answer_timeout_s: float = PIN_ANSWER_TIMEOUT_S,
        video_choice: video_profile.Choice | None = None,
    ) -> None:
        if media not in call_media.MEDIA_MODES:
            raise ValueError(f"media must be one of {call_media.MEDIA_MODES}")
        if answer not in ("manual", "auto"):
            raise ValueError("answer must be 'manual' or 'auto'")
        self._send_signal = send_signal
        self._emit_event = emit
        self._record = record
        self._config = config
        self.remote_video = remote_video if remote_video is not None else LatestFrame()
        self.local_video = local_video if local_video is not None else LatestFrame()
        self.media = media
        self.answer_mode = answer
        self.ring_timeout_s = ring_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.audio_sink = audio_sink
        self._now = now
        # Tests shorten the minutes of max_duration_min (and of the warning before it).
        self.seconds_per_minute = seconds_per_minute
        self.supervise_timeout_s = supervise_timeout_s
        self.pin_answer_timeout_s = pin_answer_timeout_s
        # Guards the reference to the current call and the day's count: start_call() checks and
        # reserves from the UI's thread while the loop ends calls.
        self._lock = threading.Lock()
        self._call: _Call | None = None
        self._last_stats = CallStats()
        self._connected_calls: list[tuple[str, datetime]] = []
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        # The video profile (docs/calls.md): given, or decided once in the background at start.
        self.video_choice = video_choice
        # Prepare media and peer connection before the offer (the default); LIENS_CALL_EARLY_SETUP=0
        # does it all when the offer arrives, as before: the set-up bench compares the two.
        self.early_setup = os.environ.get("LIENS_CALL_EARLY_SETUP", "1") != "0"
        self._video_choice_task: asyncio.Task[video_profile.Choice] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="call-engine", daemon=True)
        self._thread.start()
        self._loop.call_soon_threadsafe(self._loop.call_later, WARM_UP_AFTER_S, self._warm_up)

    def _warm_up(self) -> None:
        """Pay the first call's one-off costs ahead of it: the video probe, and the imports of
        the media path (kiosk.calls.audio pulls SciPy: ~1 s, several on a loaded machine).

        Not at once: the tablet's UI is busy starting. A call that comes first starts the same
        work itself (``_start_video_choice``; a concurrent import waits for this one).
        """
        self._start_video_choice()

    def _start_video_choice(self) -> None:
        """Import the media path and decide the video profile, off the loop, once."""
        if self.video_choice is None and self._video_choice_task is None:
            # Pinned or injected by the environment: known at once, nothing to measure.
            self.video_choice = video_profile.from_environment()
            self._video_choice_task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_import_media_path_and_decide)
            )

            def decided(task: asyncio.Task[video_profile.Choice]) -> None:
                if not task.cancelled() and task.exception() is None:
                    self.video_choice = task.result()

            self._video_choice_task.add_done_callback(decided)

    def _call_video_choice(self, call: _Call) -> video_profile.Choice:
        """The profile of ``call``: the engine's decision, or, while the probe has not answered
        yet, the top rung (a call never waits for a measurement; the track steps down if the
        CPU cannot keep up). Fixed for the call at its first use."""
        if call.video_choice is None:
            self._start_video_choice()
            call.video_choice = self.video_choice or video_profile.DEFAULT_CHOICE
        return call.video_choice

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        # Stopped by close(): let whatever is still pending (a gathering, the probe's wait) end
        # by cancellation now, rather than be torn down half-way when the loop is collected.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def close(self, timeout: float = 3.0) -> None:
        """Hang up any call (telling the other side) and stop the loop."""
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    async def _shutdown(self) -> None:
        call = self._call
        if call is not None:
            await self._hang_up(call)

    # -- what the core and the screens read ----------------------------------------------------

    @property
    def call(self) -> CallInfo | None:
        with self._lock:
            return self._call.info() if self._call is not None else None

    def call_stats(self) -> CallStats:
        """The current call's counters, or the last call's once it ended (a copy)."""
        with self._lock:
            stats = self._call.stats if self._call is not None else self._last_stats
            return dataclasses.replace(stats, timeline=dict(stats.timeline))

    def calls_today(self, approval_id: str, timezone: str) -> int:
        """Connected calls of this approval since local midnight, as this tablet remembers them."""
        tz = ZoneInfo(timezone)
        today = self._now().astimezone(tz).date()
        with self._lock:
            return sum(
                1
                for approval, at in self._connected_calls
                if approval == approval_id and at.astimezone(tz).date() == today
            )

    # -- inputs (any thread) -------------------------------------------------------------------

    def on_signal(self, data: dict[str, Any]) -> None:
        """A signal from the backend (``signal/in``'s ``data``)."""
        self._submit(self._on_signal(dict(data)))

    def on_config(self) -> None:
        """The configuration changed: a call whose approval was revoked ends (``policy``)."""
        self._submit(self._check_still_approved())

    def start_call(self, approval_id: str) -> str:
        """Dial a contact; returns the call id, raises :class:`CallRefused` at once if not."""
        config = self._config()
        with self._lock:
            if self._call is not None:
                raise CallRefused(EndReason.BUSY)
            resident, contact = self._check(config, approval_id)
            rules = dict(contact.get("policy") or {})
            supervised = rules.get("supervised") is True
            call = _Call(
                call_id=uuid.uuid4().hex,
                approval_id=approval_id,
                resident_id=str(resident.get("id", "")),
                contact_name=str(contact.get("display_name", "")),
                direction=Direction.OUTGOING,
                state=CallState.SUPERVISING if supervised else CallState.DIALLING,
                policy=rules,
                auto_answer_s=None,
                started_at=self._now(),
                supervised=supervised,
                supervision=Supervision.REQUIRED if supervised else None,
            )
            self._call = call
        self._submit(self._ask_supervision(call) if supervised else self._dial(call))
        return call.call_id

    def answer_call(self) -> None:
        self._submit(self._on_current(self._answer_or_supervise, CallState.INCOMING))

    def decline_call(self) -> None:
        self._submit(self._on_current(self._decline, CallState.INCOMING, CallState.SUPERVISING))

    def supervise(self, pin: str) -> None:
        """A member of staff typed ``pin`` on the keypad of a supervised call."""

        async def send(call: _Call) -> None:
            await self._send_pin(call, pin)

        self._submit(self._on_current(send, CallState.SUPERVISING))

    def hang_up(self) -> None:
        self._submit(self._on_current(self._hang_up))

    def end_by_staff(self, call_id: str | None = None) -> None:
        """A staff command ended the call (``policy`` on both sides)."""

        async def end(call: _Call) -> None:
            if call_id is None or call_id == call.call_id:
                call.ended_by = StaffEnd.STAFF
                await self._end(call, EndReason.POLICY, tell=Hangup)

        self._submit(self._on_current(end))

    def _submit(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._thread is None:
            self.start()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        future.add_done_callback(_log_failure)

    async def _on_current(
        self, action: Callable[[_Call], Coroutine[Any, Any, None]], *states: CallState
    ) -> None:
        call = self._call
        if call is None or call.state == CallState.ENDED or (states and call.state not in states):
            log.info("no call to act on (%s)", call.state if call else CallState.IDLE)
            return
        await action(call)

    # -- checks --------------------------------------------------------------------------------

    def _check(
        self, config: dict[str, Any] | None, approval_id: str, resident_id: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The tablet's own checks: approval in the cached config, policy allows it now."""
        found = find_approval(config, approval_id)
        if found is None or config is None:
            raise CallRefused(EndReason.POLICY)
        resident, contact = found
        if resident_id is not None and resident.get("id") != resident_id:
            raise CallRefused(EndReason.POLICY)
        timezone = str((config.get("home") or {}).get("timezone") or "UTC")
        # The lock is held by the caller: count without taking it again.
        tz = ZoneInfo(timezone)
        now = self._now()
        today = now.astimezone(tz).date()
        calls_today = sum(
            1
            for approval, at in self._connected_calls
            if approval == approval_id and at.astimezone(tz).date() == today
        )
        decision = policy.evaluate(contact.get("policy"), now, timezone, calls_today)
        if not decision.allowed:
            raise CallRefused(EndReason.POLICY, decision.next_allowed)
        return resident, contact

    async def _check_still_approved(self) -> None:
        call = self._call
        if call is None or call.state == CallState.ENDED:
            return
        if find_approval(self._config(), call.approval_id) is None:
            log.info("approval %s revoked during call %s", call.approval_id, call.call_id)
            await self._end(call, EndReason.POLICY, tell=Hangup)

    # -- signalling in -------------------------------------------------------------------------

    async def _on_signal(self, data: dict[str, Any]) -> None:
        try:
            message = parse_signal(data, wire=Wire.TO_TABLET)
        except SignalError as exc:
            log.warning("signal dropped: %s", exc)
            return
        if isinstance(message, Invite):
            await self._on_invite(message)
            return
        call = self._call
        call_id = getattr(message, "call_id", "")
        if call is None or call.call_id != call_id or call.state == CallState.ENDED:
            log.info("signal %r for unknown call %s ignored", message.kind, call_id)
            return
        outgoing = call.direction == Direction.OUTGOING
        if isinstance(message, Ringing):
            self._take_ice_servers(call, message.ice_servers)
            if outgoing and call.state == CallState.DIALLING:
                self._set_state(call, CallState.RINGING)
                # The ICE servers are known: gather while the relative's page rings.
                self._prime_pc(call)
        elif isinstance(message, Accepted):
            self._take_ice_servers(call, message.ice_servers)
            if outgoing and call.state in (CallState.DIALLING, CallState.RINGING):
                self._accepted(call)
        elif isinstance(message, Offer):
            await self._on_offer(call, message.sdp)
        elif isinstance(message, Supervised):
            await self._on_supervised(call, message)
        elif isinstance(message, Hangup):
            reason = message.reason or EndReason.HUNG_UP
            if reason == EndReason.POLICY and message.by is not None:
                call.ended_by = message.by
            await self._end(call, reason)
        else:
            log.info("signal %r ignored", message.kind)

    async def _on_invite(self, invite: Invite) -> None:
        call_id, approval_id = invite.call_id, invite.approval_id
        current = self._call
        if current is not None and current.call_id == call_id:
            return  # a QoS 1 duplicate
        config = self._config()
        with self._lock:
            if self._call is not None:
                refused: CallRefused | None = CallRefused(EndReason.BUSY)
            else:
                try:
                    resident, contact = self._check(config, approval_id, invite.resident_id)
                    refused = None
                except CallRefused as exc:
                    refused = exc
            if refused is None:
                rules = dict(contact.get("policy") or {})
                supervised = rules.get("supervised") is True
                call = _Call(
                    call_id=call_id,
                    approval_id=approval_id,
                    resident_id=str(resident.get("id", "")),
                    contact_name=str(contact.get("display_name", "")),
                    direction=Direction.INCOMING,
                    state=CallState.INCOMING,
                    policy=rules,
                    # Nobody answers a supervised call for the resident: staff must be there.
                    auto_answer_s=None if supervised else policy.auto_answer_seconds(rules),
                    started_at=self._now(),
                    ice_servers=[dict(server) for server in invite.ice_servers or ()],
                    supervised=supervised,
                )
                self._call = call
        if refused is not None:
            log.info("invite %s declined: %s", call_id, refused.reason)
            self._signal(Decline(call_id=call_id, reason=refused.reason))
            return
        call.stats.call_id = call_id
        call.stats.mark("invited")
        self._signal(Ringing(call_id=call_id))
        self._record_start(call)
        self._emit(call)
        self._later(call, self.ring_timeout_s, self._ring_timeout)
        if self.answer_mode == "auto" and not call.supervised:
            # Answered at once: the accept goes first, the preparation follows it (_accepted).
            self._later(call, 0, self._auto_answer)
            return
        # Gather candidates while it rings (no camera yet: it opens when the resident answers).
        self._prime_pc(call)
        if call.auto_answer_s is not None:
            self._later(call, call.auto_answer_s, self._auto_answer)

    def _take_ice_servers(self, call: _Call, servers: tuple[Any, ...] | None) -> None:
        if servers is not None:
            call.ice_servers = [dict(server) for server in servers]

    # -- actions on the loop -------------------------------------------------------------------

    async def _dial(self, call: _Call) -> None:
        call.stats.call_id = call.call_id
        call.stats.mark("dialled")
        self._signal(Invite(call_id=call.call_id, approval_id=call.approval_id))
        self._record_start(call)
        self._emit(call)
        # The resident chose to call: open the camera and microphone while it rings, as the
        # family page does, so that the relative's offer finds them ready.
        self._prime_media(call)
        self._later(call, self.ring_timeout_s, self._ring_timeout)

    async def _answer(self, call: _Call) -> None:
        self._signal(Accept(call_id=call.call_id))
        self._accepted(call)

    async def _answer_or_supervise(self, call: _Call) -> None:
        if call.supervised and call.supervision != Supervision.OK:
            call.supervision = Supervision.REQUIRED
            # The keypad; the relative's page keeps ringing.
            self._set_state(call, CallState.SUPERVISING)
            return
        await self._answer(call)

    # -- supervised calls ----------------------------------------------------------------------

    async def _ask_supervision(self, call: _Call) -> None:
        """An outgoing supervised call: show the keypad; nothing leaves the tablet yet."""
        self._emit(call)
        self._later(call, self.supervise_timeout_s, self._supervise_timeout)

    async def _supervise_timeout(self, call: _Call) -> None:
        if call.state == CallState.SUPERVISING and call.direction == Direction.OUTGOING:
            await self._end(call, EndReason.CANCELLED)

    async def _send_pin(self, call: _Call, pin: str) -> None:
        if call.supervision == Supervision.CHECKING:
            return  # one PIN at a time
        call.supervision = Supervision.CHECKING
        call.pin_error = None
        self._emit(call)
        self._signal(Supervise(call_id=call.call_id, approval_id=call.approval_id, pin=pin))
        call.pins_sent += 1
        sent = call.pins_sent

        async def no_answer(c: _Call) -> None:
            if (
                c.state == CallState.SUPERVISING
                and c.supervision == Supervision.CHECKING
                and c.pins_sent == sent
            ):
                c.supervision, c.pin_error = Supervision.REQUIRED, PinError.NETWORK
                self._emit(c)

        self._later(call, self.pin_answer_timeout_s, no_answer)

    async def _on_supervised(self, call: _Call, answer: Supervised) -> None:
        if call.state != CallState.SUPERVISING or call.supervision != Supervision.CHECKING:
            log.info("supervised answer for call %s in state %s ignored", call.call_id, call.state)
            return
        if answer.ok:
            call.supervision = Supervision.OK
            call.supervisor = answer.staff_name or ""
            call.pin_error = None
            log.info("call %s supervised", call.call_id)
            if call.direction == Direction.OUTGOING:
                self._set_state(call, CallState.DIALLING)
                await self._dial(call)
            else:
                self._set_state(call, CallState.INCOMING)
                await self._answer(call)
            return
        left = answer.attempts_left
        if left is not None:
            call.pin_attempts_left = max(0, min(call.pin_attempts_left - 1, left))
        else:
            call.pin_attempts_left -= 1
        if call.pin_attempts_left <= 0:
            log.info("call %s: wrong PIN %d times, declined", call.call_id, MAX_PIN_ATTEMPTS)
            if call.direction == Direction.INCOMING:
                await self._end(call, EndReason.POLICY, tell=Decline)
            else:
                await self._end(call, EndReason.POLICY)  # its invite never left the tablet
            return
        call.supervision, call.pin_error = Supervision.REQUIRED, PinError.WRONG
        self._emit(call)

    def _accepted(self, call: _Call) -> None:
        call.answered_mono = time.monotonic()
        call.stats.mark("accepted")
        self._set_state(call, CallState.CONNECTING)
        self._later(call, self.connect_timeout_s, self._connect_timeout)
        # The offer follows within a few tens of ms: have everything it needs ready or opening.
        self._prime_media(call)
        self._prime_pc(call)

    async def _auto_answer(self, call: _Call) -> None:
        if call.state == CallState.INCOMING:
            await self._answer(call)

    async def _decline(self, call: _Call) -> None:
        if call.direction == Direction.OUTGOING:  # a supervised call given up on the keypad
            await self._end(call, EndReason.CANCELLED)
            return
        await self._end(call, EndReason.DECLINED, tell=Decline)

    async def _hang_up(self, call: _Call) -> None:
        if call.state in (CallState.INCOMING, CallState.SUPERVISING):
            await self._decline(call)
        elif call.state in RINGING_STATES:
            await self._end(call, EndReason.CANCELLED, tell=Hangup)
        else:
            await self._end(call, EndReason.HUNG_UP, tell=Hangup)

    async def _ring_timeout(self, call: _Call) -> None:
        if call.state in RINGING_STATES or call.state in (
            CallState.INCOMING,
            CallState.SUPERVISING,
        ):
            await self._end(call, EndReason.MISSED, tell=Hangup)

    async def _connect_timeout(self, call: _Call) -> None:
        if call.state == CallState.CONNECTING:
            await self._end(call, EndReason.NETWORK, tell=Hangup)

    async def _max_duration(self, call: _Call) -> None:
        if call.state == CallState.CONNECTED:
            log.info("call %s reached its maximum duration", call.call_id)
            call.ended_by = StaffEnd.LIMIT
            await self._end(call, EndReason.POLICY, tell=Hangup)

    # -- SDP and media -------------------------------------------------------------------------

    async def _on_offer(self, call: _Call, sdp: str) -> None:
        if call.offer_mono is not None:
            log.warning("second offer for call %s ignored (no renegotiation)", call.call_id)
            return
        if call.direction == Direction.OUTGOING and call.state in RINGING_STATES:
            self._accepted(call)  # the "accepted" was lost or overtaken: the offer says it all
        if call.state != CallState.CONNECTING:
            log.warning("offer for call %s in state %s ignored", call.call_id, call.state)
            return
        call.offer_mono = time.monotonic()
        call.stats.mark("offer_received")
        try:
            await self._answer_offer(call, sdp)
        except Exception:
            log.exception("could not answer the offer of call %s", call.call_id)
            await self._end(call, EndReason.ERROR, tell=Hangup)

    # -- set-up ahead of the offer --------------------------------------------------------------

    def _prime_media(self, call: _Call, *, early: bool = True) -> None:
        """Start opening the camera and microphone of ``call`` (once)."""
        self._start_video_choice()
        if early and not self.early_setup:
            return
        if call.media_task is None and call.state != CallState.ENDED:
            call.media_task = asyncio.get_running_loop().create_task(self._open_media(call))
            call.media_task.add_done_callback(_log_failure)

    async def _open_media(self, call: _Call) -> call_media.LocalMedia | None:
        # Not one of call.tasks: never cancelled half-way, so that whatever it opened is stopped
        # here if the call ended meanwhile, or by _end() once it is call.media.
        # Off the loop: opening devices blocks (v4l2, PortAudio), and the first call of a process
        # imports the audio path (SciPy) — seconds on a busy machine, during which the loop must
        # still take the relative's signals.
        local = await asyncio.get_running_loop().run_in_executor(
            None,
            call_media.open_local_media,
            self.media,
            self.local_video,
            call.resident_id,
        )
        choice = self._call_video_choice(call)
        if call.state == CallState.ENDED or self._call is not call:
            local.stop()
            return None

        def on_change(rung: int, profile: video_profile.VideoProfile) -> None:
            call.stats.video_profile = choice.describe(rung)
            call.stats.profile_changes += 1
            log.info("call %s: video now %s (the CPU)", call.call_id, profile.name)

        local.video = AdaptiveVideoTrack(
            local.video, choice, adapt=choice.source != "pinned", on_change=on_change
        )
        call.media = local
        call.stats.video_profile = choice.describe()
        call.stats.mark("media_ready")
        log.info(
            "call %s sends %s, video %s %s",
            call.call_id,
            local.description,
            choice.profile.name,
            choice.codec,
        )
        return local

    def _speaker(self, call: _Call) -> call_media.AudioSink:
        """Where the relative's audio goes: the call's audio path (speaker and echo canceller's
        reference, kiosk/calls/audio.py), then the engine's own sink if it was given one."""

        def play(frame: Any) -> None:
            if call.media is not None:
                call.media.play_audio(frame)
            if self.audio_sink is not None:
                self.audio_sink(frame)

        return play

    def _prime_pc(self, call: _Call, *, early: bool = True) -> None:
        """Start creating the peer connection of ``call`` and gathering its candidates (once)."""
        self._start_video_choice()
        if early and not self.early_setup:
            return
        if call.pc_task is None and call.state != CallState.ENDED:
            call.pc_task = asyncio.get_running_loop().create_task(self._open_pc(call))
            call.pc_task.add_done_callback(_log_failure)

    async def _open_pc(self, call: _Call) -> RTCPeerConnection | None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers_from(call.ice_servers)))
        call.pc = pc  # from here on, _end() closes it
        self._watch(call, pc)
        # One audio and one video transceiver, as the browser's offer has: aiortc matches them
        # to its m-lines by kind, and the tracks are attached when the offer comes.
        choice = self._call_video_choice(call)
        for kind in ("audio", "video"):
            transceiver = pc.addTransceiver(kind, direction="sendrecv")
            if kind == "video":
                transceiver.setCodecPreferences(_codec_preferences(choice.codec))
        # Gather now: setLocalDescription() then finds the candidates ready instead of gathering
        # (and asking the home's STUN/TURN server) between the offer and the answer.
        gatherers = [t.receiver.transport.transport.iceGatherer for t in pc.getTransceivers()]
        try:
            await asyncio.gather(*(g.gather() for g in gatherers))
        except Exception as exc:  # closed meanwhile, or no interface: the answer gathers again
            log.info("call %s: early gathering failed (%s)", call.call_id, exc)
        if call.state == CallState.ENDED:
            return None
        call.stats.mark("pc_ready")
        return pc

    def _watch(self, call: _Call, pc: RTCPeerConnection) -> None:
        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                _note_first_rtp(pc, track, call.stats)
                coro: Coroutine[Any, Any, None] = call_media.consume_video(
                    track, self.remote_video, call.stats, lambda: self._first_frame(call)
                )
            else:
                coro = call_media.consume_audio(track, call.stats, self._speaker(call))
            self._task(call, coro)

        @pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if pc.iceConnectionState in ("connected", "completed"):
                call.stats.mark("ice_connected")

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("call %s: peer connection %s", call.call_id, state)
            if call.state == CallState.ENDED or call.pc is not pc:
                return
            if state == "connected" and call.state == CallState.CONNECTING:
                call.stats.mark("dtls_connected")
                self._connected(call)
            elif state == "failed":
                await self._end(call, EndReason.NETWORK, tell=Hangup)
            elif state == "closed":
                # A clean DTLS close: the other side hung up, and its hang-up signal, which
                # travels through the backend and the broker, is usually a few ms behind.
                # Give it a moment so the call ends with the reason the other side gave; with
                # no word from it, the peer vanished.
                await asyncio.sleep(REMOTE_CLOSE_GRACE_S)
                await self._end(call, EndReason.NETWORK, tell=Hangup)

    async def _answer_offer(self, call: _Call, sdp: str) -> None:
        self._prime_media(call, early=False)
        self._prime_pc(call, early=False)
        assert call.pc_task is not None and call.media_task is not None
        pc = await call.pc_task
        local = await call.media_task
        if pc is None or local is None or call.state == CallState.ENDED:
            return
        for transceiver in pc.getTransceivers():
            transceiver.sender.replaceTrack(
                local.audio if transceiver.kind == "audio" else local.video
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        call.stats.mark("remote_set")
        # The candidates are already gathered: setLocalDescription returns at once.
        await pc.setLocalDescription(await pc.createAnswer())
        if call.ended:  # meanwhile (mypy cannot see the state change across the await)
            return
        answer = pc.localDescription.sdp
        if isinstance(local.video, AdaptiveVideoTrack):
            # What the tablet is willing to decode: no more than it would send at its rung.
            answer = video_profile.with_bandwidth(answer, "video", local.video.profile.max_bitrate)
        self._signal(AnswerSignal(call_id=call.call_id, sdp=answer))
        call.stats.mark("answer_sent")

    def _first_frame(self, call: _Call) -> None:
        call.stats.mark("first_frame")
        now = time.monotonic()
        if call.answered_mono is not None:
            call.stats.first_frame_after_answer_s = round(now - call.answered_mono, 3)
        if call.offer_mono is not None:
            call.stats.first_frame_after_offer_s = round(now - call.offer_mono, 3)
        log.info(
            "call %s: first remote frame %.3f s after the answer",
            call.call_id,
            call.stats.first_frame_after_answer_s or -1,
        )

    def _connected(self, call: _Call) -> None:
        call.connected_at = self._now()
        with self._lock:
            self._connected_calls.append((call.approval_id, call.connected_at))
        self._set_state(call, CallState.CONNECTED)
        self._task(call, self._poll_stats(call))
        max_min = call.policy.get("max_duration_min")
        if isinstance(max_min, int) and not isinstance(max_min, bool) and max_min > 0:
            minute = self.seconds_per_minute
            warn_at = max(0.0, (max_min - WARNING_BEFORE_MIN) * minute)
            self._later(call, warn_at, self._warn_one_minute)
            self._later(call, max_min * minute, self._max_duration)

    async def _warn_one_minute(self, call: _Call) -> None:
        if call.state == CallState.CONNECTED and call.warning is None:
            call.warning = CallWarning.ONE_MINUTE
            log.info("call %s: one minute left", call.call_id)
            self._emit(call)

    async def _poll_stats(self, call: _Call) -> None:
        while call.state == CallState.CONNECTED:
            await self._collect_stats(call)
            await asyncio.sleep(STATS_INTERVAL_S)

    async def _collect_stats(self, call: _Call) -> None:
        pc = call.pc
        if pc is None:
            return
        with contextlib.suppress(Exception):
            for receiver in pc.getReceivers():
                report = await receiver.getStats()
                for stat in report.values():
                    if getattr(stat, "type", None) != "inbound-rtp":
                        continue
                    if stat.kind == "audio":
                        call.stats.audio_packets = stat.packetsReceived
                        call.stats.audio_packets_lost = stat.packetsLost
                    else:
                        call.stats.video_packets = stat.packetsReceived
                        call.stats.video_packets_lost = stat.packetsLost
        if call.media is not None:
            call.stats.frames_sent = call.media.frames_sent
            if call.media.audio_path is not None:
                call.stats.audio_path = call.media.audio_path.stats()
                call.stats.audio_processed = call.media.audio_path.frames_processed

    # -- ending --------------------------------------------------------------------------------

    async def _end(
        self,
        call: _Call,
        reason: EndReason,
        *,
        tell: type[Hangup] | type[Decline] | None = None,
    ) -> None:
        """End ``call``: tell the other side (a ``tell`` with ``reason``), release everything,
        go idle."""
        if call.state == CallState.ENDED or self._call is not call:
            return
        previous = call.state
        with self._lock:
            call.state = CallState.ENDED
            call.reason = reason
        if tell is not None:
            self._signal(tell(call_id=call.call_id, reason=reason))
        current = asyncio.current_task()
        for task in list(call.tasks):
            if task is not current:
                task.cancel()
        if call.pc is not None:
            if previous == CallState.CONNECTED:
                await self._collect_stats(call)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.pc.close(), CLOSE_TIMEOUT_S)
        if call.media is not None:
            call.media.stop()
        self.remote_video.clear()
        self.local_video.clear()
        ended_at = self._now()
        duration = (
            round((ended_at - call.connected_at).total_seconds())
            if call.connected_at is not None
            else 0
        )
        self._record_safely(
            "call_ended",
            {
                "call_id": call.call_id,
                "approval_id": call.approval_id,
                "resident_id": call.resident_id,
                "direction": call.direction,
                "duration_s": duration,
                "reason": reason,
            },
        )
        with self._lock:
            self._last_stats = call.stats
            self._call = None
        log.info("call %s ended: %s (%s s)", call.call_id, reason, duration)
        self._emit(call)

    # -- outputs -------------------------------------------------------------------------------

    def _set_state(self, call: _Call, state: CallState) -> None:
        with self._lock:
            call.state = state
        self._emit(call)

    def _emit(self, call: _Call) -> None:
        event = {
            "event": "call",
            "state": call.state,
            "call_id": call.call_id,
            "approval_id": call.approval_id,
            "resident_id": call.resident_id,
            "direction": call.direction,
            "contact_name": call.contact_name,
            "reason": call.reason,
            "auto_answer_s": call.auto_answer_s,
        }
        # Only when they apply: a plain call's events keep their shape.
        if call.supervised:
            event.update(
                supervised=True,
                supervision=call.supervision,
                supervisor=call.supervisor,
                pin_attempts_left=call.pin_attempts_left,
                pin_error=call.pin_error,
            )
        if call.warning is not None:
            event["warning"] = call.warning
        if call.ended_by is not None:
            event["ended_by"] = call.ended_by
        try:
            self._emit_event(event)
        except Exception:
            log.exception("call listener failed")

    def _signal(self, message: SignalMessage) -> None:
        try:
            self._send_signal(message.to_wire(Wire.FROM_TABLET))
        except Exception:
            log.exception("could not send signal %s", message.kind)

    def _record_start(self, call: _Call) -> None:
        self._record_safely(
            "call_started",
            {
                "call_id": call.call_id,
                "approval_id": call.approval_id,
                "resident_id": call.resident_id,
                "direction": call.direction,
            },
        )

    def _record_safely(self, event_type: str, data: dict[str, Any]) -> None:
        try:
            self._record(event_type, data)
        except Exception:
            log.exception("could not record %s", event_type)

    def _later(
        self,
        call: _Call,
        delay: float,
        action: Callable[[_Call], Coroutine[Any, Any, None]],
    ) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await action(call)

        self._task(call, run())

    def _task(self, call: _Call, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)
        task.add_done_callback(_log_failure)


def _import_media_path_and_decide() -> video_profile.Choice:
    with contextlib.suppress(ImportError):
        importlib.import_module("kiosk.calls.audio")
    return video_profile.decide()  # the environment's choice again, or the probe's


def _codec_preferences(first: str) -> list[Any]:
    """aiortc's video codecs, ``first`` ("VP8" or "H264") and its retransmission ahead."""
    from aiortc import RTCRtpSender

    codecs = list(RTCRtpSender.getCapabilities("video").codecs)
    wanted = f"video/{first}".lower()
    return sorted(codecs, key=lambda c: 0 if c.mimeType.lower() == wanted else 1)


def _note_first_rtp(pc: RTCPeerConnection, track: MediaStreamTrack, stats: CallStats) -> None:
    """Mark ``first_rtp`` when the first RTP packet of ``track`` reaches its receiver.

    aiortc has no event for it; the receiver's packet handler is wrapped on this one instance,
    and unwrapped after the first packet, so the rest of the call runs aiortc's own code.
    """
    receiver = next((r for r in pc.getReceivers() if r.track is track), None)
    handler = getattr(receiver, "_handle_rtp_packet", None)
    if receiver is None or handler is None:
        return

    async def first(packet: Any, arrival_time_ms: int) -> None:
        stats.mark("first_rtp")
        del receiver._handle_rtp_packet  # back to the class's method
        await handler(packet, arrival_time_ms)

    receiver._handle_rtp_packet = first  # type: ignore[method-assign]


def _log_failure(future: Any) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.error("call engine task failed", exc_info=exc)
