"""The signalling hub: relays call set-up between relatives' browsers and tablets.

Browsers speak JSON over a WebSocket (``/f/{token}/ws``); tablets speak ``signal`` envelopes on
MQTT. The hub lives on the web server's event loop: browser messages arrive there directly, tablet
messages are handed over from paho's thread with ``run_coroutine_threadsafe``. Nothing is relayed
for a pair that is not approved, or whose policy does not allow a call now; after set-up, each
message is relayed only between the two parties of its call. See ``docs/calls.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from backend.calls import checks, words
from backend.calls.ice import ice_servers
from backend.models import Call, Contact, Resident, utcnow
from backend.services.tablets import tablets_serving
from kiosk import protocol
from kiosk.calls.model import (
    ACTIVE_STATES,
    ANSWERED_STATES,
    RINGING_STATES,
    Accept,
    Accepted,
    Answer,
    CallDirection,
    Calling,
    CallState,
    Decline,
    EndedBy,
    EndReason,
    Hangup,
    Hello,
    Incoming,
    Invite,
    Offer,
    PlaceCall,
    Refused,
    Ringing,
    SignalError,
    SignalMessage,
    StaffEnd,
    Supervise,
    Supervised,
    Wire,
    as_end_reason,
    parse_signal,
)
from kiosk.calls.model import Ended as EndedMessage
from kiosk.protocol import Channel, Envelope, MessageType

if TYPE_CHECKING:
    from backend.runtime import Backend

log = logging.getLogger(__name__)
T = TypeVar("T")

# Supervised calls: PINs typed on the tablet per call, and how long a PIN typed before an
# outgoing call's invite stays good for it.
MAX_PIN_ATTEMPTS = 3
SUPERVISION_VALID_S = 300.0
# The tablet ends a call at its maximum duration; the backend does too, a little later, if the
# tablet did not (an old or tampered tablet, or one that lost the network).
MAX_DURATION_GRACE_S = 5.0
# The WebSocket close code of a family page whose link was revoked or regenerated (4404: a link
# that never worked, or no longer works, when the page connects).
LINK_GONE = 4410


class BrowserConnection:
    """One open family page: a WebSocket, the contact behind it, its language."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Any],
        contact_id: str,
        language: str,
        close: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self._send = send
        self._close = close
        self.contact_id = contact_id
        self.language = language
        self.id = uuid.uuid4().hex[:8]
        # Set when staff revoked or regenerated the link: nothing it sends is handled any more.
        self.closed = False

    async def close(self, code: int) -> None:
        """Close the page's socket (its link no longer works); idempotent."""
        self.closed = True
        if self._close is not None:
            try:
                await self._close(code)
            except Exception as exc:  # already closed by the browser
                log.debug("could not close browser %s: %s", self.id, exc)

    async def send(self, message: SignalMessage) -> None:
        try:
            await self._send(message.to_wire(Wire.TO_PAGE))
        except Exception as exc:  # a closed socket: its own receive loop will clean up
            log.debug("could not send to browser %s: %s", self.id, exc)


@dataclass
class CallSession:
    call_id: str
    direction: CallDirection
    approval_id: str
    resident_id: str
    resident_first_name: str
    contact_id: str
    contact_name: str
    timezone: str
    invited_tablets: set[str] = field(default_factory=set)
    declined_tablets: set[str] = field(default_factory=set)
    tablet_id: str | None = None  # the tablet that took the call
    browser: BrowserConnection | None = None  # the page that placed or took the call
    state: CallState = CallState.DIALLING
    ring_timer: asyncio.TimerHandle | None = None
    supervised: bool = False  # the policy wants a staff PIN before the call starts
    supervised_by: str | None = None  # the staff id whose PIN was typed
    max_duration_min: int | None = None
    max_timer: asyncio.TimerHandle | None = None


class CallHub:
    """All calls being set up or under way on this server."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.loop: asyncio.AbstractEventLoop | None = None
        self.browsers: dict[str, set[BrowserConnection]] = {}
        self.calls: dict[str, CallSession] = {}
        # call id -> (staff id, monotonic time): a PIN typed before an outgoing call's invite.
        self.supervisions: dict[str, tuple[str, float]] = {}
        self.pin_attempts: dict[str, int] = {}
        # Tests shorten the minutes of ``max_duration_min``.
        self.seconds_per_minute = 60.0
        self.max_duration_grace_s = MAX_DURATION_GRACE_S

    # -- plumbing ------------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        bridge = self.backend.bridge
        if bridge is not None and self.on_tablet_signal not in bridge.signal_handlers:
            bridge.signal_handlers.append(self.on_tablet_signal)
            bridge.status_handlers.append(self.on_tablet_status)
            bridge.replica_handlers.append(self._on_replica)

    def detach(self) -> None:
        bridge = self.backend.bridge
        if bridge is not None and self.on_tablet_signal in bridge.signal_handlers:
            bridge.signal_handlers.remove(self.on_tablet_signal)
            bridge.status_handlers.remove(self.on_tablet_status)
            if self._on_replica in bridge.replica_handlers:
                bridge.replica_handlers.remove(self._on_replica)
        self.loop = None

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        def run() -> T:
            with self.backend.db.session() as session:
                return fn(session, *args)

        return await asyncio.to_thread(run)

    async def _to_tablet(self, tablet_id: str, message: SignalMessage) -> None:
        bridge = self.backend.bridge
        if bridge is None:
            log.error("no bridge: cannot signal tablet %s", tablet_id)
            return
        data = message.to_wire(Wire.TO_TABLET)
        payload = Envelope(type=MessageType.SIGNAL, data=data).to_bytes()
        try:
            await asyncio.to_thread(
                bridge.publish, protocol.topic(tablet_id, Channel.SIGNAL_IN), payload
            )
        except Exception as exc:
            log.warning("signal to tablet %s failed: %s", tablet_id, exc)

    def _resident_busy(self, resident_id: str, tablet_ids: list[str]) -> bool:
        for call in self.calls.values():
            if call.state not in ACTIVE_STATES:
                continue
            if call.resident_id == resident_id:
                return True
            if call.tablet_id is not None and call.tablet_id in tablet_ids:
                return True
        return False

    def _ice(self, identity: str) -> list[dict[str, Any]]:
        return ice_servers(self.backend.settings, identity)

    # -- several replicas (backend/calls/routing.py): what the others must know ---------------

    async def _routing(self, method: str, *args: Any) -> Any:
        router = getattr(self.backend, "router", None)
        if router is None:
            return None
        try:
            return await asyncio.to_thread(getattr(router, method), *args)
        except Exception as exc:
            log.warning("routing %s failed: %s", method, exc)
            return None

    async def _presence(self, contact_id: str) -> None:
        await self._routing("set_presence", contact_id, len(self.browsers.get(contact_id, ())))

    async def _route_opened(self, call: CallSession) -> None:
        tablets = sorted(call.invited_tablets)
        await self._routing("call_opened", call.call_id, call.contact_id, call.resident_id, tablets)

    async def _busy_elsewhere(self, resident_id: str, tablet_ids: list[str]) -> bool:
        return bool(await self._routing("busy_elsewhere", resident_id, list(tablet_ids)))

    # -- browsers ------------------------------------------------------------------------------

    async def connect_browser(self, conn: BrowserConnection) -> None:
        self.browsers.setdefault(conn.contact_id, set()).add(conn)
        await self._presence(conn.contact_id)
        await conn.send(await self.hello(conn))

    async def disconnect_browser(self, conn: BrowserConnection) -> None:
        conns = self.browsers.get(conn.contact_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.browsers[conn.contact_id]
        await self._presence(conn.contact_id)
        for call in list(self.calls.values()):
            if call.browser is conn:
                await self.end(call, EndReason.NETWORK, by=EndedBy.CONTACT)
            elif (
                call.direction == CallDirection.FROM_RESIDENT
                and call.browser is None
                and call.contact_id == conn.contact_id
                and not self.browsers.get(conn.contact_id)
            ):
                await self.end(call, EndReason.UNAVAILABLE, by=EndedBy.CONTACT)

    async def hello(self, conn: BrowserConnection) -> Hello:
        language = conn.language

        def build(session: Any) -> Hello:
            contact = session.get(Contact, conn.contact_id)
            now = utcnow()
            residents = []
            for resident_id in checks.approved_residents(session, conn.contact_id):
                verdict = checks.check_pair(session, resident_id, conn.contact_id, now)
                resident = session.get(Resident, resident_id)
                if resident is None or verdict.detail == "not_approved":
                    continue
                message = ""
                if not verdict.allowed:
                    message = words.unavailable(
                        name=resident.first_name,
                        reason=verdict.reason,
                        detail=verdict.detail,
                        next_allowed=verdict.next_allowed,
                        timezone=verdict.timezone,
                        language=language,
                        now=now,
                    )
                residents.append(
                    {
                        "id": resident.id,
                        "first_name": resident.first_name,
                        "available": verdict.allowed,
                        "reason": verdict.detail or verdict.reason,
                        "message": message,
                        "next": verdict.next_allowed.isoformat() if verdict.next_allowed else None,
                    }
                )
            missed = []
            for call in checks.missed_for_contact(session, conn.contact_id):
                resident = session.get(Resident, call.resident_id)
                missed.append(
                    {
                        "call_id": call.id,
                        "resident_first_name": resident.first_name if resident else "",
                        "at": call.created_at.isoformat(),
                    }
                )
            return Hello(
                contact={"id": contact.id, "display_name": contact.display_name} if contact else {},
                residents=tuple(residents),
                ice_servers=tuple(self._ice(f"contact-{conn.contact_id}")),
                missed=tuple(missed),
            )

        return await self._db(build)

    async def refresh_contact(self, contact_id: str) -> None:
        """Send a fresh ``hello`` to every open page of this contact (availability changed)."""
        for conn in list(self.browsers.get(contact_id, ())):
            await conn.send(await self.hello(conn))

    async def handle_browser(self, conn: BrowserConnection, data: Any) -> None:
        """One message from a family page; anything malformed is logged and dropped."""
        try:
            message = parse_signal(data, wire=Wire.FROM_PAGE)
        except SignalError as exc:
            log.warning("browser %s sent a malformed message: %s", conn.id, exc)
            return
        if conn.closed:
            log.info("browser %s: %s after its link stopped working", conn.id, message.kind)
            return
        if isinstance(message, PlaceCall):
            await self._browser_call(conn, message.resident_id)
            return
        call = self.calls.get(getattr(message, "call_id", ""))
        if call is None or call.contact_id != conn.contact_id:
            log.info("browser %s: %s for an unknown call", conn.id, message.kind)
            return
        to_page = call.direction == CallDirection.FROM_RESIDENT
        if isinstance(message, Accept) and to_page and call.state == CallState.RINGING:
            if call.supervised and not call.supervised_by:
                log.warning("call %s is supervised but nobody supervised it", call.call_id)
                await self.end(call, EndReason.POLICY, by=EndedBy.BACKEND)
                return
            await self._browser_accepts(conn, call)
        elif isinstance(message, Decline) and to_page and call.state == CallState.RINGING:
            await self.end(call, EndReason.DECLINED, by=EndedBy.CONTACT)
        elif (
            isinstance(message, Offer)
            and call.browser is conn
            and call.state == CallState.CONNECTING
        ):
            if call.tablet_id:
                await self._to_tablet(call.tablet_id, message)
        elif isinstance(message, Hangup) and (call.browser is conn or call.browser is None):
            reason = _hangup_reason(call, message, (EndReason.NETWORK, EndReason.ERROR))
            await self.end(call, reason, by=EndedBy.CONTACT)
        else:
            log.info("browser %s: %s ignored in state %s", conn.id, message.kind, call.state)

    async def _browser_call(self, conn: BrowserConnection, resident_id: str) -> None:
        verdict = await self._db(checks.check_pair, resident_id, conn.contact_id)
        if verdict.allowed and (
            self._resident_busy(resident_id, verdict.tablet_ids)
            or await self._busy_elsewhere(resident_id, verdict.tablet_ids)
        ):
            verdict.allowed, verdict.reason = False, EndReason.BUSY
        if not verdict.allowed:
            await conn.send(await self._refused(conn, resident_id, verdict))
            return
        call = CallSession(
            call_id=uuid.uuid4().hex,
            direction=CallDirection.TO_RESIDENT,
            approval_id=verdict.approval_id,
            resident_id=verdict.resident_id,
            resident_first_name=verdict.resident_first_name,
            contact_id=verdict.contact_id,
            contact_name=verdict.contact_name,
            timezone=verdict.timezone,
            invited_tablets=set(verdict.tablet_ids),
            browser=conn,
            supervised=verdict.supervised,
            max_duration_min=verdict.max_duration_min,
        )
        self.calls[call.call_id] = call
        await self._route_opened(call)
        await self._db(
            lambda s: checks.log_created(
                s, call_id=call.call_id, direction=call.direction, check=verdict, tablet_id=None
            )
        )
        await conn.send(Calling(call_id=call.call_id, resident_id=resident_id))
        for tablet_id in sorted(call.invited_tablets):
            invite = Invite(
                call_id=call.call_id,
                approval_id=call.approval_id,
                resident_id=call.resident_id,
                contact={"id": call.contact_id, "display_name": call.contact_name},
                ice_servers=tuple(self._ice(tablet_id)),
            )
            await self._to_tablet(tablet_id, invite)
        self._arm_ring_timer(call)

    async def _refused(
        self, conn: BrowserConnection, resident_id: str, verdict: checks.PairCheck
    ) -> Refused:
        name = verdict.resident_first_name
        if not name:

            def first_name(session: Any) -> str:
                resident = session.get(Resident, resident_id)
                return resident.first_name if resident else ""

            name = await self._db(first_name)
        return Refused(
            resident_id=resident_id,
            reason=verdict.reason,
            message=words.unavailable(
                name=name,
                reason=verdict.reason,
                detail=verdict.detail,
                next_allowed=verdict.next_allowed,
                timezone=verdict.timezone,
                language=conn.language,
                now=utcnow(),
            ),
            next=verdict.next_allowed.isoformat() if verdict.next_allowed else None,
        )

    async def _browser_accepts(self, conn: BrowserConnection, call: CallSession) -> None:
        self._disarm_ring_timer(call)
        call.browser = conn
        call.state = CallState.CONNECTING
        await self._db(checks.log_answered, call.call_id, call.tablet_id)
        # Other open pages of the same relative stop ringing.
        for other in list(self.browsers.get(call.contact_id, ())):
            if other is not conn:
                await other.send(
                    EndedMessage(call_id=call.call_id, reason=EndReason.ANSWERED_ELSEWHERE)
                )
        if call.tablet_id:
            accepted = Accepted(call_id=call.call_id, ice_servers=tuple(self._ice(call.tablet_id)))
            await self._to_tablet(call.tablet_id, accepted)

    # -- tablets -------------------------------------------------------------------------------

    def on_tablet_signal(self, tablet_id: str, envelope: Envelope) -> None:
        """Called on paho's thread by the bridge: hand over to the event loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            log.warning("signal from %s while the hub is not running", tablet_id)
            return
        future = asyncio.run_coroutine_threadsafe(
            self.handle_tablet(tablet_id, envelope.data), loop
        )
        future.add_done_callback(_log_failure)

    def on_tablet_status(self, tablet_id: str, online: bool) -> None:
        """A tablet came or went (its last will): end its calls, refresh the relatives' pages."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._tablet_status(tablet_id, online), loop)
        future.add_done_callback(_log_failure)

    async def _tablet_status(self, tablet_id: str, online: bool) -> None:
        if not online:
            for call in list(self.calls.values()):
                if call.tablet_id == tablet_id:
                    await self.end(call, EndReason.NETWORK, by=EndedBy.BACKEND)
        for contact_id in list(self.browsers):
            await self.refresh_contact(contact_id)

    async def handle_tablet(self, tablet_id: str, data: dict[str, Any]) -> None:
        try:
            message = parse_signal(data, wire=Wire.FROM_TABLET)
        except SignalError as exc:
            log.warning("tablet %s sent a malformed signal: %s", tablet_id, exc)
            return
        if isinstance(message, Invite):
            await self._tablet_invites(tablet_id, message.call_id, message.approval_id)
            return
        if isinstance(message, Supervise):
            await self._tablet_supervises(tablet_id, message)
            return
        call_id = getattr(message, "call_id", "")
        call = self.calls.get(call_id)
        if call is None:
            log.info("tablet %s: %s for an unknown call %s", tablet_id, message.kind, call_id)
            return
        party = tablet_id == call.tablet_id or (
            call.tablet_id is None and tablet_id in call.invited_tablets
        )
        if not party:
            log.warning(
                "tablet %s is not a party of call %s: %s dropped", tablet_id, call_id, message.kind
            )
            return
        to_resident = call.direction == CallDirection.TO_RESIDENT
        if isinstance(message, Ringing) and call.state == CallState.DIALLING:
            call.state = CallState.RINGING
            await self._db(checks.log_ringing, call.call_id)
            if call.browser is not None:
                await call.browser.send(Ringing(call_id=call.call_id))
        elif isinstance(message, Accept) and to_resident and call.state in RINGING_STATES:
            if call.supervised and not call.supervised_by:
                log.warning("tablet %s accepted unsupervised call %s", tablet_id, call_id)
                await self.end(call, EndReason.POLICY, by=EndedBy.BACKEND)
                return
            self._disarm_ring_timer(call)
            call.tablet_id = tablet_id
            call.state = CallState.CONNECTING
            await self._db(checks.log_answered, call.call_id, tablet_id)
            for other in call.invited_tablets - {tablet_id}:
                await self._to_tablet(
                    other, Hangup(call_id=call.call_id, reason=EndReason.CANCELLED)
                )
            if call.browser is not None:
                await call.browser.send(Accepted(call_id=call.call_id))
        elif isinstance(message, Decline) and call.state in RINGING_STATES:
            call.declined_tablets.add(tablet_id)
            if call.declined_tablets >= call.invited_tablets:
                reason = message.reason
                if reason not in (EndReason.POLICY, EndReason.BUSY):
                    reason = EndReason.DECLINED
                await self.end(call, reason, by=EndedBy.RESIDENT)
        elif (
            isinstance(message, Answer)
            and call.state == CallState.CONNECTING
            and tablet_id == call.tablet_id
        ):
            if call.supervised and not call.supervised_by:
                log.warning("tablet %s answered unsupervised call %s", tablet_id, call_id)
                await self.end(call, EndReason.POLICY, by=EndedBy.BACKEND)
                return
            if call.browser is not None:
                call.state = CallState.CONNECTED
                self._arm_max_timer(call)
                await call.browser.send(message)
        elif isinstance(message, Hangup):
            kept = (EndReason.NETWORK, EndReason.ERROR, EndReason.MISSED, EndReason.POLICY)
            await self.end(call, _hangup_reason(call, message, kept), by=EndedBy.RESIDENT)
        else:
            log.info("tablet %s: %s ignored in state %s", tablet_id, message.kind, call.state)

    async def _tablet_invites(self, tablet_id: str, call_id: str, approval_id: str) -> None:
        if call_id in self.calls:
            return  # a redelivered invite
        verdict = await self._db(checks.check_approval, approval_id)
        serves = tablet_id in verdict.tablet_ids
        if verdict.reason == "offline" or (verdict.allowed and not serves):
            # This tablet is online (it just spoke) yet not serving the resident: refuse.
            verdict.allowed, verdict.reason = False, EndReason.POLICY
        if verdict.allowed and (
            self._resident_busy(verdict.resident_id, [tablet_id])
            or await self._busy_elsewhere(verdict.resident_id, [tablet_id])
        ):
            verdict.allowed, verdict.reason = False, EndReason.BUSY
        supervisor: str | None = None
        if verdict.allowed and verdict.supervised:
            supervisor = self._take_supervision(call_id)
            if supervisor is None:
                log.warning(
                    "tablet %s dialled supervised call %s without a PIN", tablet_id, call_id
                )
                verdict.allowed, verdict.reason = False, EndReason.POLICY
        if not verdict.allowed:
            reason = as_end_reason(verdict.reason) or EndReason.POLICY
            await self._to_tablet(tablet_id, Hangup(call_id=call_id, reason=reason))
            return
        call = CallSession(
            call_id=call_id,
            direction=CallDirection.FROM_RESIDENT,
            approval_id=verdict.approval_id,
            resident_id=verdict.resident_id,
            resident_first_name=verdict.resident_first_name,
            contact_id=verdict.contact_id,
            contact_name=verdict.contact_name,
            timezone=verdict.timezone,
            invited_tablets={tablet_id},
            tablet_id=tablet_id,
            supervised=verdict.supervised,
            supervised_by=supervisor,
            max_duration_min=verdict.max_duration_min,
        )
        await self._db(
            lambda s: checks.log_created(
                s, call_id=call_id, direction=call.direction, check=verdict, tablet_id=tablet_id
            )
        )
        if supervisor is not None:
            await self._db(checks.log_supervised_by, call_id, supervisor)
        pages = list(self.browsers.get(call.contact_id, ()))
        if not pages:
            # The relative's page is not open: a missed call they will see next time.
            self.calls[call_id] = call
            await self.end(call, EndReason.UNAVAILABLE, by=EndedBy.BACKEND)
            return
        self.calls[call_id] = call
        await self._route_opened(call)
        call.state = CallState.RINGING
        await self._db(checks.log_ringing, call_id)
        resident = {"id": call.resident_id, "first_name": call.resident_first_name}
        for page in pages:
            await page.send(Incoming(call_id=call_id, resident=resident))
        await self._to_tablet(
            tablet_id, Ringing(call_id=call_id, ice_servers=tuple(self._ice(tablet_id)))
        )
        self._arm_ring_timer(call)

    # -- supervised calls ----------------------------------------------------------------------

    def _take_supervision(self, call_id: str) -> str | None:
        now = time.monotonic()
        for key, (_, at) in list(self.supervisions.items()):
            if now - at > SUPERVISION_VALID_S:
                del self.supervisions[key]
        found = self.supervisions.pop(call_id, None)
        return found[0] if found is not None else None

    async def _tablet_supervises(self, tablet_id: str, message: Supervise) -> None:
        """A member of staff typed their PIN on the tablet for this call (docs/calls.md)."""
        call_id, pin = message.call_id, message.pin
        call = self.calls.get(call_id)
        if call is not None:
            if tablet_id != call.tablet_id and tablet_id not in call.invited_tablets:
                log.warning("tablet %s supervises call %s it is not a party of", tablet_id, call_id)
                return
            approval_id = call.approval_id
        else:
            if not message.approval_id:
                log.warning("tablet %s: supervise without approval for %s", tablet_id, call_id)
                return
            approval_id = message.approval_id
        attempts = self.pin_attempts.get(call_id, 0) + 1
        self.pin_attempts[call_id] = attempts
        if attempts > MAX_PIN_ATTEMPTS:
            await self._to_tablet(tablet_id, Supervised(call_id=call_id, ok=False, attempts_left=0))
            return

        def check(session: Any) -> tuple[str, str] | None:
            verdict = checks.check_approval(session, approval_id)
            if not verdict.home_id:
                return None
            if call is None and tablet_id not in tablets_serving(session, verdict.resident_id):
                return None
            staff = checks.supervisor_for(session, verdict.home_id, pin)
            checks.log_supervision(
                session,
                call_id=call_id,
                approval_id=approval_id,
                home_id=verdict.home_id,
                tablet_id=tablet_id,
                staff=staff,
                attempt=attempts,
            )
            return (staff.id, staff.name) if staff is not None else None

        found = await self._db(check)
        if found is None:
            left = MAX_PIN_ATTEMPTS - attempts
            await self._to_tablet(
                tablet_id, Supervised(call_id=call_id, ok=False, attempts_left=left)
            )
            return
        staff_id, staff_name = found
        if call is not None:
            call.supervised_by = staff_id
        else:
            self.supervisions[call_id] = (staff_id, time.monotonic())
        await self._to_tablet(
            tablet_id, Supervised(call_id=call_id, ok=True, staff_name=staff_name)
        )

    def _arm_max_timer(self, call: CallSession) -> None:
        if not call.max_duration_min or call.max_timer is not None:
            return
        delay = call.max_duration_min * self.seconds_per_minute + self.max_duration_grace_s

        def expire() -> None:
            if self.calls.get(call.call_id) is call:
                log.info("call %s passed its maximum duration: ending it", call.call_id)
                asyncio.ensure_future(
                    self.end(call, EndReason.POLICY, by=EndedBy.BACKEND, detail=StaffEnd.LIMIT)
                )

        call.max_timer = asyncio.get_running_loop().call_later(delay, expire)

    # -- ending --------------------------------------------------------------------------------

    def _arm_ring_timer(self, call: CallSession) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.backend.settings.ring_timeout_s

        def expire() -> None:
            if call.state in RINGING_STATES:
                asyncio.ensure_future(self.end(call, EndReason.MISSED, by=EndedBy.BACKEND))

        call.ring_timer = loop.call_later(timeout, expire)

    def _disarm_ring_timer(self, call: CallSession) -> None:
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None

    async def end(
        self,
        call: CallSession,
        reason: EndReason,
        *,
        by: EndedBy,
        detail: StaffEnd | None = None,
    ) -> None:
        """End ``call`` everywhere, once, and write its outcome to the call log.

        ``detail`` says who or what ended it when the backend did (``"staff"``, ``"limit"``); it
        travels with the tablet's ``hangup`` as ``by`` so that the resident reads why.
        """
        if self.calls.get(call.call_id) is not call:
            return
        del self.calls[call.call_id]
        await self._routing("call_closed", call.call_id)
        self._disarm_ring_timer(call)
        if call.max_timer is not None:
            call.max_timer.cancel()
            call.max_timer = None
        self.pin_attempts.pop(call.call_id, None)
        previous, call.state = call.state, CallState.ENDED
        await self._db(checks.log_ended, call.call_id, reason, by)
        log.info("call %s ended (%s, by %s, was %s)", call.call_id, reason, by, previous)
        if by != EndedBy.RESIDENT:
            targets = {call.tablet_id} if call.tablet_id else set(call.invited_tablets)
            hangup = Hangup(call_id=call.call_id, reason=reason, by=detail)
            for tablet_id in targets - call.declined_tablets:
                await self._to_tablet(tablet_id, hangup)
        pages: set[BrowserConnection] = set()
        if call.browser is not None:
            pages.add(call.browser)
        elif call.direction == CallDirection.FROM_RESIDENT:
            pages.update(self.browsers.get(call.contact_id, ()))
        for page in pages:
            await page.send(EndedMessage(call_id=call.call_id, reason=reason))
        # Availability may have changed (calls per day): refresh the relative's pages.
        await self.refresh_contact(call.contact_id)

    # -- staff decisions (called from synchronous routes, in the thread pool) ----------------

    def active_calls(self) -> list[dict[str, Any]]:
        """The calls being set up or under way (a snapshot, for the dashboard)."""
        return [
            {
                "call_id": c.call_id,
                "direction": c.direction,
                "state": c.state,
                "approval_id": c.approval_id,
                "resident_id": c.resident_id,
                "resident_first_name": c.resident_first_name,
                "contact_id": c.contact_id,
                "contact_name": c.contact_name,
                "tablet_id": c.tablet_id,
            }
            for c in list(self.calls.values())
        ]

    def end_calls_threadsafe(
        self,
        *,
        call_id: str | None = None,
        approval_id: str | None = None,
        resident_id: str | None = None,
        contact_id: str | None = None,
        reason: str = EndReason.POLICY,
        timeout: float = 5.0,
        broadcast: bool = True,
    ) -> int:
        """End the matching calls on both sides (staff ended it, or revoked/suspended the pair).

        Safe to call from any thread but the event loop's; returns how many calls this replica
        ended. With several replicas, the others are told to end theirs (docs/scale.md).
        """
        filters = {
            "call_id": call_id,
            "approval_id": approval_id,
            "resident_id": resident_id,
            "contact_id": contact_id,
        }
        bridge = self.backend.bridge
        if broadcast and getattr(self.backend, "router", None) is not None and bridge is not None:
            from backend.mqtt.bridge import BROADCAST

            bridge.to_replica(BROADCAST, "end_calls", {**filters, "reason": reason})
        loop = self.loop
        if loop is None or loop.is_closed():
            return 0

        async def run() -> int:
            ended = 0
            for call in list(self.calls.values()):
                if (
                    (call_id is not None and call.call_id == call_id)
                    or (approval_id is not None and call.approval_id == approval_id)
                    or (resident_id is not None and call.resident_id == resident_id)
                    or (contact_id is not None and call.contact_id == contact_id)
                ):
                    end_reason = as_end_reason(reason) or EndReason.POLICY
                    await self.end(call, end_reason, by=EndedBy.BACKEND, detail=StaffEnd.STAFF)
                    ended += 1
            return ended

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def close_pages_threadsafe(
        self, *, contact_id: str, timeout: float = 5.0, broadcast: bool = True
    ) -> int:
        """Close every open family page of ``contact_id`` now: its link was revoked or
        regenerated, the old page must neither ring nor answer (the socket closes with
        :data:`LINK_GONE`; a page reopened with the old link is refused).

        Safe to call from any thread but the event loop's; returns how many pages this replica
        closed. With several replicas, the others are told to close theirs.
        """
        bridge = self.backend.bridge
        if broadcast and getattr(self.backend, "router", None) is not None and bridge is not None:
            from backend.mqtt.bridge import BROADCAST

            bridge.to_replica(BROADCAST, "close_pages", {"contact_id": contact_id})
        loop = self.loop
        if loop is None or loop.is_closed():
            return 0

        async def run() -> int:
            pages = list(self.browsers.get(contact_id, ()))
            for page in pages:
                page.closed = True  # at once, before any await: no message slips in
            for page in pages:
                await page.close(LINK_GONE)
            return len(pages)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def _on_replica(self, what: str, body: dict[str, Any]) -> None:
        """Another replica's staff action: end the matching calls, or close the pages, this
        replica holds."""
        if what == "close_pages":
            contact_id = body.get("contact_id")
            if isinstance(contact_id, str) and contact_id:
                try:
                    self.close_pages_threadsafe(contact_id=contact_id, broadcast=False)
                except Exception as exc:
                    log.warning("closing pages for another replica failed: %s", exc)
            return
        if what != "end_calls":
            return
        filters = {
            key: value if isinstance(value := body.get(key), str) and value else None
            for key in ("call_id", "approval_id", "resident_id", "contact_id")
        }
        reason = body.get("reason")
        if not any(filters.values()) or not isinstance(reason, str):
            return
        try:
            self.end_calls_threadsafe(
                call_id=filters["call_id"],
                approval_id=filters["approval_id"],
                resident_id=filters["resident_id"],
                contact_id=filters["contact_id"],
                reason=reason,
                broadcast=False,
            )
        except Exception as exc:
            log.warning("ending calls for another replica failed: %s", exc)

    async def end_all(self, reason: EndReason = EndReason.ERROR) -> None:
        for call in list(self.calls.values()):
            await self.end(call, reason, by=EndedBy.BACKEND)


def _hangup_reason(call: CallSession, hangup: Hangup, kept: tuple[EndReason, ...]) -> EndReason:
    """Why a hang-up ended ``call``: the sender's reason when it is one of ``kept``, else
    ``hung_up`` once answered and ``cancelled`` before."""
    if hangup.reason in kept:
        return hangup.reason
    return EndReason.HUNG_UP if call.state in ANSWERED_STATES else EndReason.CANCELLED


def _log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("signal handling failed", exc_info=exc)


def call_row(call: Call) -> dict[str, Any]:
    """A call-log row as JSON (CLI and tests)."""
    return {
        "id": call.id,
        "direction": call.direction,
        "resident_id": call.resident_id,
        "contact_id": call.contact_id,
        "tablet_id": call.tablet_id,
        "created_at": call.created_at.isoformat(),
        "ring_at": call.ring_at.isoformat() if call.ring_at else None,
        "answer_at": call.answer_at.isoformat() if call.answer_at else None,
        "end_at": call.end_at.isoformat() if call.end_at else None,
        "duration_s": call.duration_s,
        "outcome": call.outcome,
        "ended_by": call.ended_by,
    }
