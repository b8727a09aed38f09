"""
gunicorn settings (the web process in Dockerfile and docker-compose.yml).

The access log leaves the query string out: webhook URLs carry `?token=` secrets, and
gunicorn writes its access log itself, past Django's logging filters.
"""

import os

bind = "0.0.0.0:8000"
workers = 4
accesslog = "-"
# %(U)s is the path without the query; %(r)s (the whole request line) and %(f)s (the
# referer, a URL of its own) would carry it.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'


def child_exit(server, worker):
    """
    A worker is gone: its live gauges leave /metrics with it (PROMETHEUS_MULTIPROC_DIR).
    Its counters stay in their files and keep being added up, so totals never go back.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Imported here: prometheus_client picks its storage when first imported, after the variable is set.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
