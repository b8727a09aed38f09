"""
Faults on the real services (Postgres, Redis, a Celery worker process): a broker that
goes away, a gateway that fails or hangs, webhooks duplicated concurrently, reports that
race the send, a database that is down. Every inbound must end with exactly one reply.
"""

import signal
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from conftest import WEBHOOK_SECRET, FakeResponse, broker_down, generic_inbound, sinch_signed_headers, wait_until
from conversations.sweeps import inbound_sweep
from conversations.tests.factories import ASK_NAME, BALANCE, registered, service_shortcode
from delivery.models import Message
from delivery.statuses import Direction, Status

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def gateway(provider_server):
    """Shortcode 57675 replying through a local generic gateway."""
    service_shortcode(
        provider="generic",
        provider_config={"outbound_url": f"{provider_server.url}/send", "timeout": 1},
        inbound_limit_per_minute=1000,
    )
    return provider_server


def replies_per_phone(server) -> Counter:
    return Counter(request.json()["to"] for request in server.requests)


def test_a_broker_the_web_cannot_reach_costs_no_webhook_and_no_reply(celery_worker, gateway, client):
    phones = [f"+9198765{n:05d}" for n in range(10)]
    # given: the web process cannot reach the broker while a burst arrives
    with broker_down():
        responses = [generic_inbound(client, phone, "2", f"down-{n}") for n, phone in enumerate(phones)]
    # then: every webhook was answered (it stores and never waits on the broker) ...
    assert [r.status_code for r in responses] == [200] * len(phones)
    # ... and the dispatcher queues them: exactly one reply per inbound reaches the gateway
    gateway.wait_for(len(phones))
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).count() == len(phones),
        what="sent",
    )
    assert replies_per_phone(gateway) == Counter(dict.fromkeys(phones, 1))


def test_rows_a_dispatcher_claimed_and_never_published_are_answered_once_by_the_sweep(celery_worker, gateway):
    phones = [f"+9198766{n:05d}" for n in range(10)]
    # given: inbound rows a dispatcher claimed (queued_at set) and died before publishing
    for n, phone in enumerate(phones):
        Message.objects.create(
            direction=Direction.INBOUND,
            status=Status.RECEIVED,
            shortcode="57675",
            phone=phone,
            body="2",
            provider="generic",
            provider_message_id=f"claimed-{n}",
            queued_at=timezone.now(),
        )
    # when: the sweep runs once they have waited long enough
    result = inbound_sweep(now=timezone.now() + timedelta(minutes=5))
    assert result == {"requeued": len(phones)}
    # then: exactly one reply per inbound reaches the gateway
    gateway.wait_for(len(phones))
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).count() == len(phones),
        what="sent",
    )
    assert replies_per_phone(gateway) == Counter(dict.fromkeys(phones, 1))


def test_gateway_500_500_200_gives_one_send_after_three_attempts(celery_worker, gateway, client):
    # The gateway asks for the retries at once (Retry-After: 0) rather than after the seconds of backoff.
    at_once = {"Retry-After": "0"}
    gateway.script = [
        FakeResponse(500, "down", headers=at_once),
        FakeResponse(503, "busy", headers=at_once),
        FakeResponse(200, {"id": "gw-ok"}),
    ]
    assert generic_inbound(client, "+919876543210", "2", "retry-1").status_code == 200
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(),
        timeout=60,
        what="sent",
    )
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (reply.attempts, reply.provider_message_id) == (3, "gw-ok")
    assert len(gateway.requests) == 3


def test_a_hanging_gateway_times_out_and_is_retried(celery_worker, gateway, client):
    gateway.script = [FakeResponse(200, {"id": "too-late"}, delay=3), FakeResponse(200, {"id": "gw-ok"})]
    assert generic_inbound(client, "+919876543210", "2", "hang-1").status_code == 200
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(),
        timeout=60,
        what="sent",
    )
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert (reply.attempts, reply.provider_message_id) == (2, "gw-ok")


def test_twenty_concurrent_copies_of_one_webhook_give_one_reply(celery_worker, gateway):
    results, barrier = [], threading.Barrier(20)

    def post():
        try:
            barrier.wait()
            results.append(generic_inbound(Client(), "+919876543210", "2", "same-id").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 20
    gateway.wait_for(1)
    wait_until(lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).exists(), what="sent")
    assert Message.objects.filter(direction=Direction.INBOUND).count() == 1
    assert Message.objects.filter(direction=Direction.OUTBOUND).count() == 1
    assert len(gateway.requests) == 1


def test_a_report_that_arrives_before_the_send_response_is_applied(celery_worker, gateway, client):
    # given: a gateway that reports delivery (by its own id, no ref) before answering the send
    def report_first(request):
        report = Client().post(
            "/webhooks/generic/status/",
            {"id": "gw-early", "status": "delivered"},
            content_type="application/json",
            HTTP_X_WEBHOOK_SECRET=WEBHOOK_SECRET,
        )
        connections.close_all()
        assert report.status_code == 200
        return FakeResponse(200, {"id": "gw-early"})

    gateway.respond = report_first
    # when
    assert generic_inbound(client, "+919876543210", "2", "early-1").status_code == 200
    # then
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.DELIVERED).exists(), what="delivered"
    )
    reply = Message.objects.get(direction=Direction.OUTBOUND)
    assert reply.provider_message_id == "gw-early"
    assert reply.reports.get().applied


def test_a_flow_keeps_its_order_across_the_worker(celery_worker, gateway, client):
    for n, text in enumerate(["1", "Asha", "2"]):
        assert generic_inbound(client, "+919876543210", text, f"flow-{n}").status_code == 200
    gateway.wait_for(3)
    # Replies may leave in any order; what matters is that each answers the right step.
    replies = Message.objects.filter(direction=Direction.OUTBOUND).order_by("in_reply_to_id")
    bodies = [reply.body for reply in replies]
    assert bodies == [
        ASK_NAME,
        registered("Asha"),
        BALANCE,
    ]


def test_database_down_is_a_503_so_the_aggregator_retries(client):
    saved_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 9  # nothing listens there
    try:
        response = generic_inbound(client, "+919876543210", "2", "db-down")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port
    assert response.status_code == 503
    assert response.json() == {"error": "database unavailable, retry later"}
    assert not Message.objects.exists()


def test_a_signed_webhook_refused_for_a_database_outage_passes_when_retried(client, settings):
    # given: Sinch signing with a nonce, which is refused the second time it is seen
    settings.SINCH_WEBHOOK_SECRET = "sinch-signing-secret"
    body = b'{"type": "mo_text", "id": "01SINCHRETRY", "from": "919876543210", "to": "57675", "body": "2"}'
    headers = sinch_signed_headers(body, secret=settings.SINCH_WEBHOOK_SECRET)

    def post():
        return client.post("/webhooks/sinch/inbound/", body, content_type="application/json", headers=headers)

    # when: the first delivery meets a database outage, and Sinch retries the very same request
    saved_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = 9  # nothing listens there
    try:
        first = post()
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port
    retry = post()

    # then: the outage asked for a retry, and the retry was stored once
    assert first.status_code == 503
    assert retry.status_code == 200, retry.content
    assert Message.objects.filter(provider="sinch", provider_message_id="01SINCHRETRY").count() == 1


def test_a_paused_worker_catches_up_with_a_burst_exactly_once(celery_worker, gateway, client):
    phones = [f"+9198123{n:05d}" for n in range(10)]
    celery_worker.send_signal(signal.SIGSTOP)
    try:
        responses = [generic_inbound(client, phone, "2", f"paused-{n}") for n, phone in enumerate(phones)]
        # duplicates of the whole burst while nothing is being handled
        responses += [generic_inbound(client, phone, "2", f"paused-{n}") for n, phone in enumerate(phones)]
    finally:
        celery_worker.send_signal(signal.SIGCONT)
    assert [r.status_code for r in responses] == [200] * 20
    gateway.wait_for(len(phones))
    wait_until(
        lambda: Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).count() == len(phones),
        what="sent",
    )
    assert replies_per_phone(gateway) == Counter(dict.fromkeys(phones, 1))


def test_sweeps_wait_while_the_broker_has_a_backlog(celery_worker, gateway, settings):
    from delivery.queueing import broker_backlog
    from delivery.sweeps import outbox_sweep

    # Any task waiting is a backlog. The dispatcher queues the burst INBOUND_BATCH_SIZE (20) to a
    # task, and the stopped worker holds as many as it prefetches (2): 60 SMS leave some waiting.
    settings.SWEEP_MAX_BACKLOG = 0
    celery_worker.send_signal(signal.SIGSTOP)
    try:
        client = Client()
        for n in range(60):
            generic_inbound(client, f"+9198111{n:05d}", "2", f"backlog-{n}")
        # The burst is on the broker once the dispatcher has published past what the worker prefetched.
        wait_until(lambda: broker_backlog() > 0, what="a backlog on the broker")
        later = timezone.now() + timedelta(minutes=5)
        assert inbound_sweep(now=later)["skipped"] is True
        assert outbox_sweep(now=later)["backlog"] >= 1
    finally:
        celery_worker.send_signal(signal.SIGCONT)
    gateway.wait_for(60)
