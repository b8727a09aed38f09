FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v0

# var/metrics: PROMETHEUS_MULTIPROC_DIR in docker-compose.yml, a volume that starts with this owner.
RUN useradd --system --uid 1000 smsgate && mkdir -p var/metrics && chown -R smsgate var
USER smsgate

EXPOSE 8000
# gunicorn.conf.py: bind, workers, and an access log without query strings (?token=).
CMD ["gunicorn", "smsgate.wsgi", "--config", "gunicorn.conf.py"]
