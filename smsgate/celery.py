import os

from celery import Celery
from kombu import Queue

from delivery.queueing import BULK_QUEUE, DEFAULT_QUEUE, INBOUND_QUEUE, REPLIES_QUEUE, TASK_QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")

app = Celery("smsgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One queue per kind of work (delivery/queueing.py), each with workers of its own in
# production, so a bulk backlog never stands between an SMS and its answer. Every queue is
# declared, durable, so that a worker started without -Q consumes all of them (the test
# worker and the bench do) and a purge empties all of them.
app.conf.task_default_queue = DEFAULT_QUEUE
app.conf.task_queues = tuple(Queue(name, routing_key=name, durable=True) for name in TASK_QUEUES)
# The task's own queue; a caller may name another (message_send names bulk for batch traffic,
# a countdown retry names retries). What no route names goes to the default queue.
app.conf.task_routes = {
    # handle_inbound and whatever batch variant sits beside it
    "conversations.tasks.handle_inbound*": {"queue": INBOUND_QUEUE},
    "delivery.tasks.deliver": {"queue": REPLIES_QUEUE},
    "bulk.tasks.batch_dispatch": {"queue": BULK_QUEUE},
}
app.autodiscover_tasks()
