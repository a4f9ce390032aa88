"""Enrolment: exchange a staff-issued code for this tablet's own broker credentials."""

from __future__ import annotations

import requests

from kiosk.settings import Credentials

REASONS = {
    "invalid_code",
    "expired_code",
    "used_code",
    "too_many_attempts",
    "unreachable",
    "server_error",
}


class EnrolmentError(Exception):
    """Enrolment failed; ``reason`` is one of :data:`REASONS` (the screens translate it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason if reason in REASONS else "server_error"
        self.detail = detail


def normalise_server_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url and "://" not in url:
        url = "http://" + url
    return url


def enrol(server_url: str, code: str, *, app_version: str, timeout: float = 10.0) -> Credentials:
    """POST the code to ``/api/v1/enrol``; raise :class:`EnrolmentError` on any failure."""
    server_url = normalise_server_url(server_url)
    if not server_url:
        raise EnrolmentError("unreachable", "no server address")
    try:
        response = requests.post(
            f"{server_url}/api/v1/enrol",
            json={"code": code, "app_version": app_version},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise EnrolmentError("unreachable", str(exc)) from exc
    if response.status_code in (403, 429):
        try:
            detail = response.json()["detail"]
            raise EnrolmentError(str(detail["reason"]), str(detail.get("detail", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise EnrolmentError("server_error", response.text[:200]) from exc
    if response.status_code != 200:
        raise EnrolmentError("server_error", f"HTTP {response.status_code}")
    try:
        body = response.json()
        return Credentials.from_json({**body, "server_url": server_url})
    except (ValueError, KeyError, TypeError) as exc:
        raise EnrolmentError("server_error", "unexpected answer from the server") from exc
