from django.core.management.base import BaseCommand, CommandError

from conversations.services import inbound_handle, message_receive
from delivery.models import Message
from delivery.phones import InvalidPhoneNumber
from delivery.providers.base import InboundSMS, WebhookBadRequest
from delivery.services import message_deliver


class Command(BaseCommand):
    help = (
        "Run inbound SMS through the whole pipeline in this process and print the replies. "
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
            inbound, _ = message_receive(provider="simulator", sms=sms)
        except (InvalidPhoneNumber, WebhookBadRequest) as exc:
            raise CommandError(str(exc)) from exc
        # Whatever the broker does, run the steps here too so the result can be printed;
        # the status guards make a step that already ran a no-op.
        inbound_handle(message_id=inbound.id)
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
