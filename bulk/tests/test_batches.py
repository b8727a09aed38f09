"""Accepting a batch, cancelling it, and reading its progress."""

import math
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bulk.models import Batch, BatchRecipient
from bulk.services import (
    CHUNK_SIZE,
    BatchRefused,
    RecipientInput,
    batch_cancel,
    batch_create,
    batch_progress,
    batches_tick,
    phone_normalise,
)
from commands.tests.factories import ShortcodeFactory
from delivery.models import Message, Suppression
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.statuses import Status
from templates.tests.factories import dlt_registration

pytestmark = pytest.mark.django_db


def recipients(*numbers: str, **variables) -> list[RecipientInput]:
    return [RecipientInput(to=number, variables=dict(variables)) for number in numbers]


def phones(count: int, start: int = 0) -> list[str]:
    return [f"+9198{start + n:08d}" for n in range(count)]


def states(batch: Batch) -> dict[str, str]:
    return dict(batch.recipients.values_list("phone", "state"))


def test_a_batch_keeps_every_recipient_and_counts_what_it_will_not_send():
    # given
    shortcode = ShortcodeFactory(number="57675")
    Suppression.objects.create(phone="+919800000002", shortcode="57675", keyword="STOP")
    Suppression.objects.create(phone="+919800000003", shortcode="", keyword="STOPALL")
    Suppression.objects.create(phone="+919800000004", shortcode="99999", keyword="STOP")  # another shortcode's
    given = ["+919800000001", "+919800000002", "919800000003", "09800000004", "12345", "not a number", "+919800000001"]
    # when
    batch = batch_create(shortcode=shortcode, text="Sale today", recipients=recipients(*given))
    # then
    assert batch.total == 7
    assert list(batch.recipients.values_list("phone", "state")) == [
        ("+919800000001", "pending"),
        ("+919800000002", "suppressed"),
        ("+919800000003", "suppressed"),
        ("+919800000004", "pending"),
        ("12345", "invalid"),
        ("not a number", "invalid"),
        ("+919800000001", "duplicate"),
    ]
    progress = batch_progress(batch_id=batch.id)
    assert (progress.total, progress.suppressed, progress.invalid, progress.duplicate) == (7, 2, 2, 1)


def test_the_batch_dispatch_runs_once_the_batch_is_stored(django_capture_on_commit_callbacks):
    shortcode = ShortcodeFactory(number="57675", max_mps=10)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        batch = batch_create(shortcode=shortcode, text="Hello", recipients=recipients(*phones(20)))
    # then: its first tick handed 8 over (10/s less the reply reserve), and they were sent
    batch.refresh_from_db()
    assert batch.state == "running"
    assert Message.objects.filter(batch_recipient__batch=batch).count() == 8
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize(
    ("text", "variables", "state", "why"),
    [
        ("Hi {name}, your code is {code}", {"name": "Asha", "code": "42"}, "pending", ""),
        ("Hi {name}, your code is {code}", {"name": "Asha"}, "invalid", "no value for {code}"),
        (
            "Hi {name}, your code is {code}",
            {"name": "Asha " * 200, "code": "1"},
            "invalid",
            "over the shortcode's limit",
        ),
    ],
)
def test_each_recipient_needs_its_variables_and_must_fit_the_segment_limit(text, variables, state, why):
    shortcode = ShortcodeFactory(number="57675")
    batch = batch_create(
        shortcode=shortcode,
        text=text,
        recipients=[
            RecipientInput(to="+919800000001", variables=variables),
            RecipientInput(to="+919800000009", variables={"code": "7"}),
        ],
        variables={"name": "friend"},
    )
    recipient = batch.recipients.get(phone="+919800000001")
    assert recipient.state == state
    assert why in recipient.error


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"text": "", "template": ""}, "text_or_template"),
        ({"text": "Hi", "template": "1107161000000000001"}, "text_or_template"),
        ({"text": "", "template": "1107000000000000000"}, "template_not_found"),
        ({"text": "Hi", "recipients": []}, "no_recipients"),
        ({"text": "Hi", "recipients": recipients("garbage", "12")}, "nothing_to_send"),
        ({"text": "Hi", "recipients": recipients(*phones(6))}, "too_many_recipients"),
    ],
)
def test_a_batch_that_cannot_be_sent_is_refused_whole_and_nothing_is_stored(settings, fields, code):
    settings.BULK_MAX_RECIPIENTS = 5
    shortcode = ShortcodeFactory(number="57675")
    fields = {"recipients": recipients("+919800000001"), **fields}
    with pytest.raises(BatchRefused) as refused:
        batch_create(shortcode=shortcode, **fields)
    assert refused.value.code == code
    assert not Batch.objects.exists()
    assert not BatchRecipient.objects.exists()


def test_a_dlt_bound_text_matching_no_template_is_refused_with_the_matchers_why():
    dlt_registration("Hi {#var#}, your order has shipped.", sender_id="SMSGTE")
    shortcode = ShortcodeFactory(number="57675", dlt_bound=True, sender_id="SMSGTE")
    with pytest.raises(BatchRefused) as refused:
        batch_create(
            shortcode=shortcode, text="Hi {name}, your order is late.", recipients=recipients("+919800000001", name="A")
        )
    assert refused.value.code == "dlt_no_template"
    # the same text that matches is accepted
    batch = batch_create(
        shortcode=shortcode, text="Hi {name}, your order has shipped.", recipients=recipients("+919800000001", name="A")
    )
    assert batch.state == "accepted"


def test_a_template_batch_is_named_by_template_name_and_rendered_per_recipient():
    header = dlt_registration("Dear {#var#}, your OTP is {#numeric#}.", sender_id="SMSGTE")
    template = header.templates.get()
    template.name = "otp"
    template.save()
    shortcode = ShortcodeFactory(number="57675", dlt_bound=True, sender_id="SMSGTE", max_mps=100)
    batch = batch_create(
        shortcode=shortcode,
        template="otp",
        variables={"1": "customer"},
        recipients=[
            RecipientInput(to="+919800000001", variables={"2": "1234"}),
            RecipientInput(to="+919800000002", variables={"1": "Ravi", "2": "5678"}),
            RecipientInput(to="+919800000003", variables={"2": "not digits"}),
        ],
    )
    assert batch.dlt_template_id == template.dlt_template_id
    # when
    batches_tick()
    # then
    bodies = dict(Message.objects.values_list("phone", "body"))
    assert bodies == {
        "+919800000001": "Dear customer, your OTP is 1234.",
        "+919800000002": "Dear Ravi, your OTP is 5678.",
    }
    assert set(Message.objects.values_list("dlt_template_id", flat=True)) == {template.dlt_template_id}
    assert batch.recipients.get(phone="+919800000003").state == "invalid"


def test_ten_thousand_recipients_are_accepted_with_a_bounded_number_of_queries(
    django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    shortcode = ShortcodeFactory(number="57675")
    Suppression.objects.create(phone="+919800000007", shortcode="57675", keyword="STOP")
    given = [RecipientInput(to=phone, variables={"name": f"n{i}"}) for i, phone in enumerate(phones(10_000))]
    # One insert per thousand recipients, the suppression list read once, and a few more:
    # never one per recipient.
    bound = math.ceil(10_000 / CHUNK_SIZE) + 6
    # when
    with django_assert_max_num_queries(bound), django_capture_on_commit_callbacks() as queued:
        batch = batch_create(shortcode=shortcode, text="Hi {name}", recipients=given)
    # then: every recipient stored, and one task queued for the whole batch
    assert BatchRecipient.objects.filter(batch=batch, state="pending").count() == 9_999
    assert BatchRecipient.objects.get(batch=batch, phone="+919800000007").state == "suppressed"
    assert len(queued) == 1


def test_cancel_stops_the_pending_recipients_and_the_messages_not_yet_sent():
    # given: a batch with one tick handed over and held (a queued message not yet with the provider)
    shortcode = ShortcodeFactory(number="57675", max_mps=5)
    batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(*phones(10)))
    first = batch.recipients.order_by("id").first()
    Message.objects.create(
        direction="out", status=Status.QUEUED, shortcode="57675", phone=first.phone, body="Hi", provider="console"
    )
    BatchRecipient.objects.filter(id=first.id).update(state="message", message=Message.objects.get())
    # when
    assert batch_cancel(batch_id=batch.id) is True
    # then
    batch.refresh_from_db()
    assert batch.state == "cancelled"
    assert batch.finished_at is not None
    assert Message.objects.get().status == "failed"
    assert Message.objects.get().error_code == "batch_cancelled"
    progress = batch_progress(batch_id=batch.id)
    assert (progress.cancelled, progress.failed, progress.queued) == (9, 1, 0)
    # a cancelled batch is never ticked again, and cancelling twice changes nothing
    assert batches_tick() == {"ticked": 0}
    assert batch_cancel(batch_id=batch.id) is False


def test_progress_follows_the_messages_of_the_batch(django_capture_on_commit_callbacks):
    shortcode = ShortcodeFactory(number="57675", max_mps=100)
    batch = batch_create(shortcode=shortcode, text="Hi", recipients=recipients(*phones(6), "bad"))
    with django_capture_on_commit_callbacks(execute=True):
        batches_tick()
    messages = list(Message.objects.filter(batch_recipient__batch=batch).order_by("id"))
    Message.objects.filter(id=messages[0].id).update(status=Status.DELIVERED, delivered_at=timezone.now())
    Message.objects.filter(id=messages[1].id).update(status=Status.UNDELIVERED)
    Message.objects.filter(id=messages[2].id).update(status=Status.REFUSED)
    # when
    with CaptureQueriesContext(connection) as queries:
        progress = batch_progress(batch_id=batch.id)
    # then
    assert len(queries) == 2
    assert progress.as_dict() == {
        "total": 7,
        "queued": 0,
        "sent": 3,
        "delivered": 1,
        "failed": 1,
        "refused": 1,
        "suppressed": 0,
        "invalid": 1,
        "duplicate": 0,
        "cancelled": 0,
    }


@pytest.mark.parametrize(("region", "code"), [("IN", "91"), ("US", "1"), ("GB", "44"), ("AR", "54"), ("IT", "39")])
def test_the_fast_number_check_agrees_with_the_full_parse(region, code):
    generator = random.Random(region)
    numbers = [f"+{code}{generator.randrange(10**9, 10**11)}" for _ in range(2000)]
    numbers += [f"+{code}0{generator.randrange(10**8, 10**10)}" for _ in range(100)] + ["+91", "+9198 7654 3210"]

    def normalised(normalise, number):
        try:
            return normalise(number, region=region)
        except InvalidPhoneNumber:
            return None

    assert [normalised(phone_normalise, n) for n in numbers] == [normalised(to_e164, n) for n in numbers]
