"""
Periodic jobs on the embedded default, where no broker means no celery beat.

When tasks run in-process (no CELERY_BROKER_URL), the serving process runs
settings.CELERY_BEAT_SCHEDULE itself in one daemon thread: the inbound and outbox
sweeps answer and send what the in-process handling could not finish (a phone busy
for too long, a database that stayed locked), and old rows are purged (delivery/retention.py).

It is started by smsgate/wsgi.py, which both `runserver` (in the process that serves)
and gunicorn load; `migrate`, `seed_demo`, the test run and other management commands
never start it. Like celery beat, each job first runs one interval after the start.
Each sweep takes its own lock and only re-queues rows still pending, whose status
guards make a second run a no-op; so several serving processes may each run the
schedule.
"""

import logging
import threading

from celery.schedules import maybe_schedule
from django.conf import settings
from django.db import close_old_connections

from smsgate.celery import app

logger = logging.getLogger(__name__)


class EmbeddedBeat:
    """A beat schedule run in this process: `tick()` runs the jobs that are due."""

    def __init__(self, schedule: dict):
        self.jobs = {
            name: (entry["task"], maybe_schedule(entry["schedule"], app=app)) for name, entry in schedule.items()
        }
        started = app.now()
        self.last_run = dict.fromkeys(self.jobs, started)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> float:
        """Run every job that is due; returns the seconds until one may be due again."""
        next_check = 60.0
        for name, (task_name, schedule) in self.jobs.items():
            due, next_in = schedule.is_due(self.last_run[name])
            if due:
                self.last_run[name] = app.now()
                self.run(name, task_name)
            next_check = min(next_check, next_in)
        return next_check

    def run(self, name: str, task_name: str) -> None:
        try:
            result = app.tasks[task_name].apply()
            if result.failed():
                logger.error("periodic job %s failed: %r", name, result.result)
            else:
                logger.debug("periodic job %s: %s", name, result.result)
        except Exception:  # the thread must outlive a failing job
            logger.exception("periodic job %s failed", name)

    def start(self) -> "EmbeddedBeat":
        self._thread = threading.Thread(target=self._loop, name="embedded-beat", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            # The thread is outside any request: close connections past their age (or
            # broken) the way Django does around requests.
            close_old_connections()
            try:
                wait = max(self.tick(), 0.5)
            finally:
                close_old_connections()


def embedded_beat_start() -> EmbeddedBeat | None:
    """Run the beat schedule in this process when tasks run in-process; None when a broker is in use."""
    if not app.conf.task_always_eager:
        return None
    beat = EmbeddedBeat(settings.CELERY_BEAT_SCHEDULE).start()
    logger.info("tasks run in-process: periodic jobs run in this process (%s)", ", ".join(beat.jobs))
    return beat
