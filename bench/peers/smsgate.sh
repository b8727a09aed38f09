# smsgate as a drop-in target of ../shared/bench/run_peers.sh (sourced by it: start_bg,
# wait_http and add_target are its helpers). The webhook ack as the floor is measured:
# gunicorn sync with $SYNC_WORKERS workers, DEBUG off, persistent connections, Postgres,
# Redis, the broker on Redis with no worker during the load (the inbound dispatcher
# publishing to it runs); generic provider, stored, queued, channel-logged.
#
#   TARGETS_DIR=bench/peers ../shared/bench/run_peers.sh --only 'floor-sync|seed-node|smsgate' --no-micro
SMSGATE_DIR=${SMSGATE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SMSGATE_ENV=(
  DJANGO_DEBUG=0 DJANGO_SECRET_KEY=bench-secret-key DJANGO_ALLOWED_HOSTS=127.0.0.1
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/smsgate_peers
  REDIS_URL=redis://127.0.0.1:6379/13 CELERY_BROKER_URL=redis://127.0.0.1:6379/14
  WEBHOOK_SECRET=bench-secret PUBLIC_BASE_URL=http://127.0.0.1:8100 LOG_LEVEL=WARNING
)
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='smsgate_peers'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE smsgate_peers"
(
  cd "$SMSGATE_DIR"
  env "${SMSGATE_ENV[@]}" .venv/bin/python manage.py migrate --noinput -v0
  env "${SMSGATE_ENV[@]}" .venv/bin/python manage.py collectstatic --noinput -v0
  env "${SMSGATE_ENV[@]}" .venv/bin/python manage.py seed_demo >/dev/null
  env "${SMSGATE_ENV[@]}" .venv/bin/python manage.py shell -c "
from commands.models import Shortcode
Shortcode.objects.filter(number='57675').update(provider='generic', dlt_bound=False,
    provider_config={'outbound_url': 'http://127.0.0.1:3999/send'}, inbound_limit_per_minute=0, max_mps=10000)
"
  redis-cli -n 14 FLUSHDB >/dev/null
)
start_bg smsgate env "${SMSGATE_ENV[@]}" "$SMSGATE_DIR/.venv/bin/gunicorn" --chdir "$SMSGATE_DIR" smsgate.wsgi:application \
  --no-control-socket -b 127.0.0.1:8100 -k sync -w "$SYNC_WORKERS" --log-level warning
# The inbound dispatcher queues what the webhook stored (conversations/dispatch.py): part of the ack's cost.
start_bg smsgate-dispatch env "${SMSGATE_ENV[@]}" "$SMSGATE_DIR/.venv/bin/python" "$SMSGATE_DIR/manage.py" inbound_dispatch
wait_http http://127.0.0.1:8100/health/live 90
add_target smsgate http://127.0.0.1:8100/webhooks/generic/inbound/ "$SMSGATE_DIR/bench/peers/post_unique.lua"
