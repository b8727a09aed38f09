import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")

app = Celery("smsgate")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Batch traffic has a queue of its own (delivery.queueing.BULK_QUEUE): the dispatcher by this
# route, each batch message's deliver task by the queue message_send names. Replies stay on
# the default queue, so a running batch never stands between an SMS and its answer.
# Both queues are declared, so a worker started without -Q consumes both and a purge empties both.
app.conf.task_queues = tuple(Queue(name, routing_key=name) for name in (app.conf.task_default_queue, "bulk"))
app.conf.task_routes = {"bulk.tasks.batch_dispatch": {"queue": "bulk"}}
app.autodiscover_tasks()
