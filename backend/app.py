"""The FastAPI application: the JSON API and the pages, over one running :class:`Backend`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import func, select

from backend.api.deps import BackendDep, SessionDep
from backend.api.routes import enrolment
from backend.auth import routes as staff_auth
from backend.auth.deps import LoginRequired
from backend.calls.hub import LINK_GONE, BrowserConnection, CallHub
from backend.dashboard import router as dashboard_router
from backend.i18n import pick_language
from backend.models import Home, Resident, Tablet
from backend.photos import routes as photo_routes
from backend.public import routes as public_routes
from backend.runtime import Backend
from backend.services import directory
from backend.services.errors import ServiceError
from backend.web import STATIC, render
from kiosk.viewmodel import initials

log = logging.getLogger(__name__)


def create_app(backend: Backend) -> FastAPI:
    """An app serving ``backend``; the caller starts and stops the backend."""
    hub = CallHub(backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        try:
            yield
        finally:
            await hub.end_all()  # reason: error
            hub.detach()

    app = FastAPI(
        title="Liens",
        version="0.1.0",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.backend = backend
    app.state.hub = hub
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(enrolment.router)
    app.include_router(public_routes.router)
    app.include_router(staff_auth.router)
    app.include_router(dashboard_router)
    app.include_router(photo_routes.router)
    app.add_exception_handler(LoginRequired, staff_auth.login_required_handler)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.get("/healthz")
    def healthz(backend: BackendDep) -> dict[str, Any]:
        bridge = backend.bridge
        return {
            "status": "ok",
            "broker": "own" if backend.settings.own_broker else "shared",
            "mqtt_connected": bool(bridge and bridge.connected),
        }

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, session: SessionDep, backend: BackendDep) -> HTMLResponse:
        homes = []
        for home in session.scalars(select(Home).order_by(Home.name)):
            online = session.scalar(
                select(func.count())
                .select_from(Tablet)
                .where(Tablet.home_id == home.id, Tablet.online.is_(True))
            )
            homes.append({"name": home.name, "online": online or 0})
        bridge = backend.bridge
        return render(
            request, "index.html", homes=homes, broker_connected=bool(bridge and bridge.connected)
        )

    @app.get("/f/{token}", response_class=HTMLResponse)
    def family_page(token: str, request: Request, session: SessionDep) -> HTMLResponse:
        contact = directory.contact_by_token(session, token)
        if contact is None:
            from backend.i18n import pick_language, translations

            t = translations(
                pick_language(
                    request.query_params.get("lang"), request.headers.get("accept-language")
                )
            )
            return render(
                request,
                "message.html",
                status_code=404,
                title=t.gettext("This link does not work"),
                message=t.gettext(
                    "This personal link is not valid any more. Ask the home's staff for a new one."
                ),
            )
        residents = []
        for approval in contact.approvals:
            if approval.status != "approved":
                continue
            resident: Resident = approval.resident
            residents.append(
                {
                    "id": resident.id,
                    "first_name": resident.first_name,
                    "initials": initials(resident.first_name),
                }
            )
        return render(
            request, "family.html", contact=contact, home=contact.home, residents=residents
        )

    @app.websocket("/f/{token}/ws")
    async def family_socket(websocket: WebSocket, token: str) -> None:
        """Call signalling for one open family page; the personal link's token is the key."""

        def lookup() -> str | None:
            with backend.db.session() as session:
                contact = directory.contact_by_token(session, token)
                return contact.id if contact is not None else None

        async def close(code: int) -> None:
            await websocket.close(code=code)

        contact_id = await asyncio.to_thread(lookup)
        if contact_id is None:
            await websocket.close(code=4404)
            return
        await websocket.accept()
        language = pick_language(
            websocket.query_params.get("lang"), websocket.headers.get("accept-language")
        )
        conn = BrowserConnection(websocket.send_json, contact_id, language, close=close)
        await hub.connect_browser(conn)
        try:
            # A link revoked or regenerated between the lookup and now: the apply step closed
            # the pages it saw, not this one; look again now that it is registered.
            if await asyncio.to_thread(lookup) != contact_id:
                await conn.close(LINK_GONE)
                return
            while True:
                text = await websocket.receive_text()
                if len(text) > 256 * 1024:
                    log.warning("family page sent an oversized message; dropped")
                    continue
                try:
                    message = json.loads(text)
                except ValueError:
                    log.warning("family page sent a message that is not JSON; dropped")
                    continue
                await hub.handle_browser(conn, message)
        except WebSocketDisconnect:
            pass
        finally:
            await hub.disconnect_browser(conn)

    return app
