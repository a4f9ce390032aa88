"""The home's own TURN server (coturn, ``deploy/coturn/turnserver.conf``) with the credentials the
backend hands out: two aiortc peers restricted to relay candidates connect through it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from backend.calls.ice import ice_servers
from backend.settings import Settings
from tests.fixtures.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "coturn" / "turnserver.conf"
SECRET = "turn-secret-for-tests"


@pytest.fixture
def turnserver(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn is not installed (apt-get install coturn)")
    port = free_port()
    lines = []
    for line in CONF.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key in ("listening-port", "static-auth-secret", "log-file", "min-port", "max-port"):
            continue
        if line.startswith("denied-peer-ip=127."):
            continue  # both test peers live on loopback
        lines.append(line)
    lines += [
        f"listening-port={port}",
        f"static-auth-secret={SECRET}",
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        "allow-loopback-peers",
        "min-port=50000",
        "max-port=50100",
        f"log-file={tmp_path / 'turn.log'}",
        f"pidfile={tmp_path / 'turn.pid'}",
        f"userdb={tmp_path / 'turn.db'}",
    ]
    conf = tmp_path / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail("coturn did not start")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _servers(port: int, identity: str) -> list[RTCIceServer]:
    settings = Settings(
        turn_urls=f"turn:127.0.0.1:{port}?transport=udp",
        turn_secret=SECRET,
        secret_key="x" * 32,
    )
    return [RTCIceServer(**server) for server in ice_servers(settings, identity)]


async def _connect_through_relay(port: int) -> tuple[str, str]:
    config_a = RTCConfiguration(
        iceServers=_servers(port, "tablet-a"), iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )
    config_b = RTCConfiguration(
        iceServers=_servers(port, "contact-b"), iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )
    a, b = RTCPeerConnection(config_a), RTCPeerConnection(config_b)
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    channel = a.createDataChannel("hello")

    @b.on("datachannel")
    def on_channel(ch):  # type: ignore[no-untyped-def]
        @ch.on("message")
        def on_message(message):  # type: ignore[no-untyped-def]
            if not received.done():
                received.set_result(message)

    @channel.on("open")
    def on_open() -> None:
        channel.send("bonjour")

    try:
        await a.setLocalDescription(await a.createOffer())
        offer_sdp = a.localDescription.sdp
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        message = await asyncio.wait_for(received, 15)
        return message, offer_sdp
    finally:
        await a.close()
        await b.close()


def test_calls_can_relay_through_the_homes_own_turn_server(turnserver: int) -> None:
    message, offer_sdp = asyncio.run(_connect_through_relay(turnserver))
    assert message == "bonjour"
    candidates = [line for line in offer_sdp.splitlines() if line.startswith("a=candidate")]
    assert candidates and all(" typ relay" in line for line in candidates)


def test_wrong_turn_secret_gives_no_relay(turnserver: int) -> None:
    settings = Settings(
        turn_urls=f"turn:127.0.0.1:{turnserver}?transport=udp",
        turn_secret="not-the-secret",
        secret_key="x" * 32,
    )
    servers = [RTCIceServer(**s) for s in ice_servers(settings, "intruder")]

    async def gather() -> str:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        )
        pc.createDataChannel("x")
        try:
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        finally:
            await pc.close()

    sdp = asyncio.run(gather())
    assert "typ relay" not in sdp
