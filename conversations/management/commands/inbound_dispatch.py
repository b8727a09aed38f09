import signal

from django.core.management.base import BaseCommand, CommandError

from conversations.dispatch import InboundDispatcher
from delivery.queueing import tasks_run_in_process


class Command(BaseCommand):
    help = (
        "Queue the handling of stored inbound SMS on the broker, many to a task, until stopped "
        "(SIGTERM or Ctrl-C). Run one or more beside the workers; see conversations/dispatch.py."
    )

    def handle(self, *args, **options):
        if tasks_run_in_process():
            raise CommandError("no CELERY_BROKER_URL: inbound SMS are handled by the webhook itself")
        dispatcher = InboundDispatcher()
        signal.signal(signal.SIGTERM, lambda *_: dispatcher.stop())
        self.stdout.write("inbound dispatcher running")
        try:
            dispatcher.run()
        except KeyboardInterrupt:
            dispatcher.stop()
