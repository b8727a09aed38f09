"""
gunicorn settings (the web process in Dockerfile and docker-compose.yml).

The access log leaves the query string out: webhook URLs carry `?token=` secrets, and
gunicorn writes its access log itself, past Django's logging filters.
"""

bind = "0.0.0.0:8000"
workers = 4
accesslog = "-"
# %(U)s is the path without the query; %(r)s (the whole request line) and %(f)s (the
# referer, a URL of its own) would carry it.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
