"""DNS rebinding against the webhook sender (issue 15): a name that resolves to a public address when
checked and to loopback a moment later must not reach loopback. The sender resolves once, checks, and
connects to the address it checked (app/services/webhook_network.py); a real receiver on 127.0.0.1
stands for the internal service the rebinding aims at."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.services.webhook_delivery import WebhookSender
from app.services.webhook_network import webhook_client
from app.services.webhooks import generate_secret
from app.store.tables_delivery import DeliveryStatus
from app.store.webhooks import DeliveryRecord, SendClaim

PUBLIC = "93.184.216.34"  # public, and nothing here answers on it
REBINDING = "rebind.conveyor.test"


@pytest.fixture
def receiver():
    """An HTTP server on loopback that records the Host header of every request it gets."""
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("content-length", 0)))
            hosts.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hosts
    server.shutdown()
    server.server_close()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """socket.getaddrinfo answering `REBINDING` with a public address the first time, loopback after."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN202 - socket.getaddrinfo's shape
        name = host.decode() if isinstance(host, bytes) else host
        if name != REBINDING:
            return real(host, port, *args, **kwargs)
        lookups.append(name)
        address = PUBLIC if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return lookups


def claim_for(url: str) -> SendClaim:
    now = datetime.now(UTC)
    delivery = DeliveryRecord(
        id="d1",
        job_id="j1",
        project_id="p1",
        message_id="msg_1",
        event_type="job.succeeded",
        url=url,
        payload='{"type":"job.succeeded"}',
        status=DeliveryStatus.sending,
        attempt_count=0,
        retries_used=0,
        next_attempt_at=None,
        last_status_code=None,
        last_error=None,
        created_at=now,
        updated_at=now,
    )
    return SendClaim(delivery, "token", (generate_secret(),))


def test_a_rebinding_name_never_reaches_loopback(receiver, rebinding_dns):
    port, hosts = receiver
    with webhook_client(1.0, allow_private=False) as client:
        outcome = WebhookSender(client, schedule=[60]).send(claim_for(f"http://{REBINDING}:{port}/hook"))
    assert hosts == []  # the loopback service was never reached
    assert rebinding_dns == [REBINDING]  # one lookup: the address checked is the address connected to
    assert outcome.status is DeliveryStatus.pending and outcome.status_code is None, outcome


def test_a_name_resolving_to_loopback_is_refused_before_connecting(receiver):
    port, hosts = receiver
    with webhook_client(1.0, allow_private=False) as client:
        outcome = WebhookSender(client, schedule=[60]).send(claim_for(f"http://localhost:{port}/hook"))
    assert hosts == []
    assert "loopback, private or link-local" in outcome.error


def test_allowed_private_receivers_get_the_name_in_their_host_header(receiver):
    port, hosts = receiver
    with webhook_client(1.0, allow_private=True) as client:
        outcome = WebhookSender(client, schedule=[60]).send(claim_for(f"http://localhost:{port}/hook"))
    assert outcome.status is DeliveryStatus.succeeded, outcome
    assert hosts == [f"localhost:{port}"]
