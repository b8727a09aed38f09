import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.handling import PhoneBusy, inbound_handle
from conversations.receiving import SIMULATOR_PROVIDER, message_receive
from delivery.deliver import message_deliver
from delivery.models import Message
from delivery.phones import InvalidPhoneNumber
from delivery.providers.base import InboundSMS, WebhookBadRequest


class Command(BaseCommand):
    help = (
        "Run inbound SMS through the whole pipeline and print the replies (handled in this process, "
        "or by a Celery worker when one takes the message first). "
        "Give several texts to walk a multi-step flow (the local-memory cache lives as long as the process)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="sender", required=True, help="the subscriber's number")
        parser.add_argument("--to", dest="recipient", required=True, help="the shortcode")
        parser.add_argument("texts", nargs="*", default=[""], help="message text(s), sent in order")

    def handle(self, *args, sender, recipient, texts, **options):
        for text in texts or [""]:
            self.simulate(sender, recipient, text)

    def simulate(self, sender: str, recipient: str, text: str) -> None:
        sms = InboundSMS(sender=sender, recipient=recipient, body=text, provider_message_id=None, raw={"cli": True})
        try:
            inbound, _ = message_receive(provider=SIMULATOR_PROVIDER, sms=sms)
        except (InvalidPhoneNumber, WebhookBadRequest) as exc:
            raise CommandError(str(exc)) from exc
        # Whatever the broker does, run the steps here too so the result can be printed;
        # the status guards make a step that already ran a no-op.
        self.handle_here_or_wait(inbound)
        self.stdout.write(f"← {inbound.phone} to {inbound.shortcode}: {inbound.body!r}")
        replies = list(Message.objects.filter(in_reply_to=inbound).order_by("id"))
        if not replies:
            self.stdout.write("(no reply)")
        for reply in replies:
            message_deliver(message_id=reply.id, final_attempt=True)
            reply.refresh_from_db()
            self.stdout.write(f"→ {reply.body}")
            details = [f"{reply.status} via {reply.provider}"]
            if reply.dlt_template_id:
                details.append(f"DLT template {reply.dlt_template_id}")
            if reply.error_code:
                details.append(f"{reply.error_code}: {reply.error_message}")
            self.stdout.write(f"  [{', '.join(details)}]")

    def handle_here_or_wait(self, inbound: Message) -> None:
        """
        Handle the message here, or, while a Celery worker holds the phone (it took the
        message from the broker first), wait until the worker has handled it: once it is
        no longer `received`, inbound_handle returns at once. Gives up after the phone
        lock's own lifetime, when the lock would have expired anyway.
        """
        deadline = time.monotonic() + settings.PHONE_LOCK_SECONDS
        while True:
            try:
                inbound_handle(message_id=inbound.id)
                return
            except PhoneBusy:
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"{inbound.phone} is still being handled elsewhere after {settings.PHONE_LOCK_SECONDS}s; "
                        f"see message {inbound.id} in the admin"
                    ) from None
                time.sleep(0.1)
