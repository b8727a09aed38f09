"""`python manage.py smpp_worker --shortcode 57675`: hold the shortcode's SMPP bind until stopped."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from smpp_gateway.bind import Bind
from smpp_gateway.config import BindConfigError, bind_config_get

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Hold one shortcode's SMPP bind_transceiver: submit its queued messages, receive its MO and "
        "delivery receipts. Run one per bind; SIGTERM or SIGINT unbinds and gives back what was not sent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--shortcode", required=True, help="The shortcode whose bind this process holds.")
        parser.add_argument(
            "--poll-seconds", type=float, default=0.5, help="How long one turn waits for the SMSC when idle."
        )

    def handle(self, *args, shortcode: str, poll_seconds: float, **options):
        try:
            config = bind_config_get(shortcode)
        except BindConfigError as exc:
            raise CommandError(str(exc)) from exc
        stopping = threading.Event()

        def stop(signum, frame):
            logger.info("smpp_worker %s: signal %s, unbinding", shortcode, signum)
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"smpp_worker {shortcode}: binding to {config.host}:{config.port} as {config.system_id}")
        # Waits (rebind and throttle backoff) end at once when a signal asks to stop.
        Bind(shortcode, sleep=stopping.wait, poll_seconds=poll_seconds).run(should_stop=stopping.is_set)
        self.stdout.write(f"smpp_worker {shortcode}: stopped")
