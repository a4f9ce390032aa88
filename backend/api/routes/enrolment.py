"""Tablet enrolment: a single-use code is exchanged for the tablet's own broker credentials."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from backend import apply as apply_step
from backend.api.deps import BackendDep
from backend.broker import BrokerAdminError
from backend.services import tablets as tablet_service
from backend.services.tablets import EnrolmentRefused
from kiosk import protocol

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["enrolment"])

# Codes are 8 digits: ten wrong tries per client address in ten minutes keep guessing hopeless.
# Behind a reverse proxy, run uvicorn with --forwarded-allow-ips so that the address is the
# tablet's, not the proxy's.
MAX_FAILURES = 10
WINDOW_S = 600.0


class FailureLimiter:
    """Wrong enrolment codes per client address, over a sliding window (one per app)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            window = self._failures.get(client)
            if window is None:
                return False
            while window and now - window[0] > self.window_s:
                window.popleft()
            if not window:
                del self._failures[client]  # keep the table as small as the attackers
                return False
            return len(window) >= self.max_failures

    def note_failure(self, client: str) -> None:
        with self._lock:
            self._failures[client].append(time.monotonic())


def _limiter(request: Request) -> FailureLimiter:
    state = request.app.state
    if not hasattr(state, "enrolment_limiter"):
        state.enrolment_limiter = FailureLimiter()
    limiter: FailureLimiter = state.enrolment_limiter
    return limiter


class EnrolmentRequest(BaseModel):
    code: str = Field(min_length=1, max_length=32)
    app_version: str = Field(default="", max_length=50)


class MqttCredentials(BaseModel):
    host: str
    port: int
    tls: bool
    username: str
    password: str


class EnrolmentPublic(BaseModel):
    tablet_id: str
    tablet_name: str
    home_name: str
    topic_prefix: str
    mqtt: MqttCredentials


class EnrolmentErrorPublic(BaseModel):
    reason: str
    detail: str


@router.post(
    "/enrol",
    response_model=EnrolmentPublic,
    responses={403: {"model": EnrolmentErrorPublic}, 429: {"model": EnrolmentErrorPublic}},
)
def enrol(body: EnrolmentRequest, request: Request, backend: BackendDep) -> EnrolmentPublic:
    client = request.client.host if request.client else "?"
    limiter = _limiter(request)
    if limiter.blocked(client):
        raise HTTPException(
            429,
            {"reason": "too_many_attempts", "detail": "Too many wrong codes: wait ten minutes"},
        )
    s = backend.settings
    try:
        with backend.db.session() as session:
            enrolment = tablet_service.enrol(
                session=session, code=body.code, secret_key=s.secret_key
            )
            if backend.broker_admin is not None:
                # Inside the transaction: if the broker refuses, the code is not spent.
                backend.broker_admin.register_tablet(enrolment.tablet_id, enrolment.password)
    except EnrolmentRefused as exc:
        limiter.note_failure(client)
        raise HTTPException(403, {"reason": exc.reason, "detail": str(exc)}) from exc
    except BrokerAdminError as exc:
        log.error("broker refused to register a tablet: %s", exc)
        raise HTTPException(
            503, {"reason": "server_error", "detail": "The message broker is unavailable"}
        ) from exc
    # Its first configuration (if the broker is down, it follows when the broker is back).
    apply_step.apply(backend, request.app.state.hub, enrolment.consequences)
    return EnrolmentPublic(
        tablet_id=enrolment.tablet_id,
        tablet_name=enrolment.tablet_name,
        home_name=enrolment.home_name,
        topic_prefix=f"{protocol.TABLETS}/{enrolment.tablet_id}",
        mqtt=MqttCredentials(
            host=s.tablet_mqtt_host,
            port=s.mqtt_public_port or backend.mqtt_port,
            tls=False,
            username=enrolment.tablet_id,
            password=enrolment.password,
        ),
    )
