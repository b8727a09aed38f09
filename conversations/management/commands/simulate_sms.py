from django.core.management.base import BaseCommand, CommandError

from conversations.receiving import SIMULATOR_PROVIDER
from conversations.simulation import SimulationBusy, sms_simulate
from delivery.phones import InvalidPhoneNumber
from delivery.providers.base import WebhookBadRequest


class Command(BaseCommand):
    help = (
        "Run inbound SMS through the whole pipeline and print the replies (handled in this process, "
        "or by a Celery worker when one takes the message first); replies go out through the "
        "shortcode's own gateway. Give several texts to walk a multi-step flow (the local-memory "
        "cache lives as long as the process)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="sender", required=True, help="the subscriber's number")
        parser.add_argument("--to", dest="recipient", required=True, help="the shortcode")
        parser.add_argument("texts", nargs="*", default=[""], help="message text(s), sent in order")

    def handle(self, *args, sender, recipient, texts, **options):
        for text in texts or [""]:
            self.simulate(sender, recipient, text)

    def simulate(self, sender: str, recipient: str, text: str) -> None:
        try:
            simulated = sms_simulate(
                phone=sender, shortcode=recipient, text=text, provider=SIMULATOR_PROVIDER, raw={"cli": True}
            )
        except (InvalidPhoneNumber, WebhookBadRequest, SimulationBusy) as exc:
            raise CommandError(str(exc)) from exc
        inbound = simulated.inbound
        self.stdout.write(f"← {inbound.phone} to {inbound.shortcode}: {inbound.body!r}")
        if not simulated.replies:
            self.stdout.write("(no reply)")
        for reply in simulated.replies:
            self.stdout.write(f"→ {reply.body}")
            details = [f"{reply.status} via {reply.provider}"]
            if reply.dlt_template_id:
                details.append(f"DLT template {reply.dlt_template_id}")
            if reply.error_code:
                details.append(f"{reply.error_code}: {reply.error_message}")
            self.stdout.write(f"  [{', '.join(details)}]")
