"""
Settings for smsgate, read from the environment (django-environ).

Every variable is optional: without any, the service runs on the embedded default
(SQLite under var/, a local-memory cache, Celery tasks run eagerly in-process and the
console provider). With DJANGO_DEBUG off it refuses to start without a secret key.
Variables may also come from a .env file (DJANGO_ENV_FILE, by default .env beside
manage.py), read when it exists; a variable set in the environment wins over the file.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# The .env file fills in only what the environment leaves unset (read_env never overwrites).
ENV_FILE = Path(env.str("DJANGO_ENV_FILE", default="") or BASE_DIR / ".env")
if ENV_FILE.is_file():
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["127.0.0.1", "localhost", "[::1]", "testserver"] if DEBUG else [],
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # OpenAPI 3 for the send API, with Swagger UI and ReDoc served from our own static files.
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # HTTP and database metrics on /metrics (smsgate/metrics_view.py adds ours).
    "django_prometheus",
    "commands",
    "templates",
    "delivery",
    "conversations",
    "bulk",
    "api",
    "smpp_gateway",
    # The admin console's own pages and the staff and agent roles.
    "console",
    # Demo data and services (`seed_demo`); nothing else imports it.
    "demo",
]

MIDDLEWARE = [
    # First and last: times and counts every request, including the ones a middleware answers.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn, so no separate file server is needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "smsgate.urls"
WSGI_APPLICATION = "smsgate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise. Connections are kept
# open between requests: a new connection per request costs most of a webhook's time.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'smsgate.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent requests on one SQLite file (the embedded default): WAL lets readers go on
    # while one connection writes; IMMEDIATE takes the write lock at BEGIN, so a transaction
    # waits its turn there (busy timeout) instead of failing with "database is locked" when
    # it upgrades from reading to writing; the timeout is how long it waits, in seconds.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=20),
        }
    )
    # Tests run on an in-memory database, one per test process.
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
# The same backends wrapped by django-prometheus, which counts queries, errors and connections.
if DATABASES["default"]["ENGINE"].startswith("django.db.backends."):
    DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace("django.db.", "django_prometheus.db.", 1)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: conversation sessions and rate limits. Redis when REDIS_URL is set.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "smsgate",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "smsgate",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Behind a TLS-terminating proxy, signature checks use PUBLIC_BASE_URL rather than
# whatever Host the proxy forwards.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")
if PUBLIC_BASE_URL.startswith("https://"):
    CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL]

# HTTPS: with an https PUBLIC_BASE_URL and DEBUG off, plain HTTP is redirected, browsers are
# told to stay on HTTPS (HSTS) and cookies travel only over HTTPS.
HTTPS_ONLY = PUBLIC_BASE_URL.startswith("https://") and not DEBUG
# Believe the proxy's X-Forwarded-Proto: only when every request comes through a proxy that
# sets it, or any client can claim HTTPS by sending the header itself.
TRUST_X_FORWARDED_PROTO = env.bool("TRUST_X_FORWARDED_PROTO", default=False)
if TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Off when the proxy in front redirects to HTTPS itself but cannot be trusted for the header.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS_ONLY)
# Health probes and Prometheus scrapes come over plain HTTP from inside the network: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics/?$"]
# HSTS max-age in seconds (0 sends no header); the two flags add its includeSubDomains and preload directives.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY

# The send API (api/): a token per ApiClient, its own request rate (throttle counts in the
# cache), one error shape, cursor pagination. Views that are not the API set their own.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiClientAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.IsApiClient"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ApiClientRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.MessageCursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "smsgate send API",
    "DESCRIPTION": "Send SMS through a shortcode, follow their status, receive signed status callbacks.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
# An Idempotency-Key's first answer is replayed this long, then the key is purged.
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)
# Status callbacks: attempts per status change (exponential backoff between them) and the
# time one POST may take. Callback URLs must be https to a public address, unless their
# origin (scheme://host[:port], ":*" for any port) is in CALLBACK_ALLOWED_ORIGINS.
CALLBACK_MAX_ATTEMPTS = env.int("CALLBACK_MAX_ATTEMPTS", default=8)
CALLBACK_TIMEOUT_SECONDS = env.float("CALLBACK_TIMEOUT_SECONDS", default=5.0)
CALLBACK_ALLOWED_ORIGINS = env.list("CALLBACK_ALLOWED_ORIGINS", default=[])

# Webhooks: SMS payloads are small; anything larger than this is refused with 413.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOK_MAX_BODY_BYTES, 2_621_440)
WEBHOOK_SECRET = env.str("WEBHOOK_SECRET", default="")
ALLOWLISTED_IPS = env.list("ALLOWLISTED_IPS", default=[])
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# A timestamped webhook signature (generic X-Signature) is refused this far from now, either way.
WEBHOOK_SIGNATURE_MAX_AGE_SECONDS = env.int("WEBHOOK_SIGNATURE_MAX_AGE_SECONDS", default=300)
# An inbound SMS without a provider id that repeats one (same sender, shortcode, text) this recently is a replay.
INBOUND_DEDUPE_SECONDS = env.int("INBOUND_DEDUPE_SECONDS", default=120)
# The inbound dispatcher (conversations/dispatch.py) claims up to INBOUND_DISPATCH_CLAIM stored
# messages a round and queues them INBOUND_BATCH_SIZE to a task; idle, it looks again after
# INBOUND_DISPATCH_IDLE_SECONDS (the most a message waits before it is queued).
INBOUND_DISPATCH_CLAIM = env.int("INBOUND_DISPATCH_CLAIM", default=500)
INBOUND_BATCH_SIZE = env.int("INBOUND_BATCH_SIZE", default=20)
INBOUND_DISPATCH_IDLE_SECONDS = env.float("INBOUND_DISPATCH_IDLE_SECONDS", default=0.02)

# /metrics answers `Authorization: Bearer <METRICS_TOKEN>` (masked like every secret) ...
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# ... and these source addresses (IPs and CIDRs); with neither set only DEBUG opens it.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# Where every gunicorn and Celery worker writes its metrics for /metrics to add up (unset: one process).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client reads the variable itself when first imported (after settings), also when it came from .env.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# Providers by slug: the slug is the one in webhook URLs and in Shortcode.provider.
SMS_PROVIDERS = {
    "console": "delivery.providers.console.ConsoleProvider",
    "generic": "delivery.providers.generic.GenericProvider",
    # further providers: one line each
    "sinch": "delivery.providers.sinch.SinchProvider",
    "msg91": "delivery.providers.msg91.Msg91Provider",
    "twilio": "delivery.providers.twilio.TwilioProvider",
    "plivo": "delivery.providers.plivo.PlivoProvider",
    "smpp": "delivery.providers.smpp.SmppProvider",
}
# Configurable adapters: every delivery/providers/adapters/*.json, plus these (slug -> config).
SMS_ADAPTERS = env.json("SMS_ADAPTERS", default={})
SMS_PROVIDER_SLUGS = sorted(
    {*SMS_PROVIDERS, *SMS_ADAPTERS, *(p.stem for p in (BASE_DIR / "delivery/providers/adapters").glob("*.json"))}
)
SMS_DEFAULT_PROVIDER = env.str("SMS_DEFAULT_PROVIDER", default="console")
SMS_DEFAULT_REGION = env.str("SMS_DEFAULT_REGION", default="IN")

# India DLT. Characters one placeholder value may take (operators commonly allow 30).
DLT_VARIABLE_MAX_LENGTH = env.int("DLT_VARIABLE_MAX_LENGTH", default=30)
# Promotional SMS go out only between these hours, IST, as "start,end" (some aggregators use 10,21).
DLT_PROMOTIONAL_HOURS = tuple(env.list("DLT_PROMOTIONAL_HOURS", cast=int, default=[9, 21]))
if len(DLT_PROMOTIONAL_HOURS) != 2 or not 0 <= DLT_PROMOTIONAL_HOURS[0] < DLT_PROMOTIONAL_HOURS[1] <= 23:
    raise ImproperlyConfigured("DLT_PROMOTIONAL_HOURS must be two hours 'start,end' with 0 <= start < end <= 23.")
# Seconds a process trusts its template index before asking the cache whether templates changed.
DLT_INDEX_RECHECK_SECONDS = env.float("DLT_INDEX_RECHECK_SECONDS", default=0.0)

# Each provider block is optional; a provider whose secret is unset refuses its webhooks
# unless DEBUG is on. *_API_BASE points a provider's API at another origin.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
TWILIO_FROM = env.str("TWILIO_FROM", default="")
TWILIO_API_BASE = env.str("TWILIO_API_BASE", default="")
TWILIO_SHARED_KEY_SECRET = env.str("TWILIO_SHARED_KEY_SECRET", default="")

PLIVO_AUTH_ID = env.str("PLIVO_AUTH_ID", default="")
PLIVO_AUTH_TOKEN = env.str("PLIVO_AUTH_TOKEN", default="")
PLIVO_API_BASE = env.str("PLIVO_API_BASE", default="")
# V2 signatures cover neither body nor query; accepted only when this is on, each nonce once within the TTL.
PLIVO_ALLOW_SIGNATURE_V2 = env.bool("PLIVO_ALLOW_SIGNATURE_V2", default=False)
PLIVO_V2_NONCE_TTL_SECONDS = env.int("PLIVO_V2_NONCE_TTL_SECONDS", default=24 * 3600)

SINCH_SERVICE_PLAN_ID = env.str("SINCH_SERVICE_PLAN_ID", default="")
SINCH_API_TOKEN = env.str("SINCH_API_TOKEN", default="")
SINCH_WEBHOOK_SECRET = env.str("SINCH_WEBHOOK_SECRET", default="")
SINCH_API_BASE = env.str("SINCH_API_BASE", default="https://us.sms.api.sinch.com")

MSG91_AUTH_KEY = env.str("MSG91_AUTH_KEY", default="")
MSG91_API_BASE = env.str("MSG91_API_BASE", default="https://control.msg91.com")

# Providers that sign nothing require ?token=<PROVIDER>_WEBHOOK_TOKEN on their webhook URLs.
SINCH_WEBHOOK_TOKEN = env.str("SINCH_WEBHOOK_TOKEN", default="")
MSG91_WEBHOOK_TOKEN = env.str("MSG91_WEBHOOK_TOKEN", default="")
GUPSHUP_WEBHOOK_TOKEN = env.str("GUPSHUP_WEBHOOK_TOKEN", default="")
TEXTLOCAL_WEBHOOK_TOKEN = env.str("TEXTLOCAL_WEBHOOK_TOKEN", default="")
# Karix, Route Mobile and Kaleyra (adapters): their API credentials are {env:...} names read at send time.
KARIX_WEBHOOK_TOKEN = env.str("KARIX_WEBHOOK_TOKEN", default="")
ROUTEMOBILE_WEBHOOK_TOKEN = env.str("ROUTEMOBILE_WEBHOOK_TOKEN", default="")
KALEYRA_WEBHOOK_TOKEN = env.str("KALEYRA_WEBHOOK_TOKEN", default="")

GATEWAY_OUTBOUND_URL = env.str("GATEWAY_OUTBOUND_URL", default="")
GATEWAY_API_KEY = env.str("GATEWAY_API_KEY", default="")
# Origins (scheme://host[:port]) a shortcode's `outbound_url` may name: the gateway key goes there.
GATEWAY_ALLOWED_ORIGINS = env.list(
    "GATEWAY_ALLOWED_ORIGINS",
    default=["{0.scheme}://{0.netloc}".format(urlsplit(GATEWAY_OUTBOUND_URL))] if GATEWAY_OUTBOUND_URL else [],
)
# Checks a shortcode's provider options on save (commands names no other app; this wires delivery's in).
SHORTCODE_CONFIG_CHECK = "delivery.providers.provider_config_errors"
# What the shortcode admin shows from other apps (provider options, DLT headers, readiness, webhook URLs).
SHORTCODE_SETUP = "console.shortcode_setup"
GATEWAY_TIMEOUT_SECONDS = env.float("GATEWAY_TIMEOUT_SECONDS", default=10.0)

# How long rows are kept, in days (0: for ever); purged hourly by delivery/retention.py.
RETENTION_PERIODS = {
    # Channel log rows (webhooks received, provider API calls).
    "channel_log": env.int("CHANNEL_LOG_RETENTION_DAYS", default=7),
    # Delivery reports' raw payloads are emptied; the report rows stay as long as their message.
    "report_payload": env.int("REPORT_PAYLOAD_RETENTION_DAYS", default=180),
    # Messages, deleted with their delivery reports.
    "message": env.int("MESSAGE_RETENTION_DAYS", default=180),
}
# Rows one purge transaction touches: small enough that no table is locked for long.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
# Refused webhooks (metadata only) stored per source address per minute; the rest are counted in the log.
CHANNEL_LOG_REFUSALS_PER_MINUTE = env.int("CHANNEL_LOG_REFUSALS_PER_MINUTE", default=10)

# Handlers that call other systems (the `http` handler) give up after this long, connect and every read included.
HANDLER_HTTP_TIMEOUT_SECONDS = env.float("HANDLER_HTTP_TIMEOUT_SECONDS", default=5.0)
# A longer answer from a handler's endpoint is refused, not read.
HANDLER_HTTP_MAX_RESPONSE_BYTES = env.int("HANDLER_HTTP_MAX_RESPONSE_BYTES", default=64 * 1024)
# Private, loopback, link-local and reserved addresses a handler may call anyway (CIDRs); the demo calls itself.
HANDLER_HTTP_ALLOWED_NETWORKS = env.list(
    "HANDLER_HTTP_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"] if DEBUG else []
)
# Host names a handler may call whatever addresses they resolve to (internal services).
HANDLER_HTTP_ALLOWED_HOSTS = env.list("HANDLER_HTTP_ALLOWED_HOSTS", default=[])
# Celery task names a `queue` command may start, besides those named "queued.*" by their authors.
QUEUE_HANDLER_TASKS = env.list("QUEUE_HANDLER_TASKS", default=[])

# Celery: without a broker every task runs eagerly in-process (the embedded default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
# A task's message is acknowledged once the task has run, and given back to the broker when
# the worker process running it dies (SIGKILL, out of memory): the broker delivers it again,
# and the tasks' claims (the `received` guard, `queued -> sending`) make a second run harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Each worker process reserves one message at a time: a handle_inbound waits in the broker,
# where any free process takes it, rather than behind a slow task in a busy process's
# prefetch; a phone's messages stay close to their order and every worker gets its share.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Queues (smsgate/celery.py) and their messages outlive a broker restart.
CELERY_TASK_DEFAULT_DELIVERY_MODE = "persistent"
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connection around every task unless this is
# set: a new connection per task costs more than the task itself. Reuse it for this many.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A webhook must answer even when the broker is down: fail fast on publish and let the
# outbox sweep re-queue what was stored.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 2
if CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://")):
    # RabbitMQ: a publish returns once the broker has the message (publisher confirms); one
    # the broker refuses raises, and its row is left for the sweep. The connect timeout is
    # broker_connection_timeout (above); a write to a stalled broker gives up after 5 s.
    # RabbitMQ closes a channel whose delivery stays unacknowledged past its consumer_timeout
    # (30 min by default), and a task waiting for its countdown (up to an hour) is one: the
    # broker's consumer_timeout must be longer (docker-compose.yml sets two hours).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True, "write_timeout": 5}
else:
    # Redis: a message a worker took is given to another after visibility_timeout unless
    # acknowledged. With late acknowledgement a task waiting for its countdown (a callback's
    # retry, up to an hour; a gateway's Retry-After, up to an hour) is unacknowledged the whole
    # time, so the timeout must be longer than the longest countdown or it would run twice.
    # It is also how long a killed worker's tasks wait before they are delivered again; the
    # sweeps re-queue their rows long before that.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "visibility_timeout": 2 * 3600,
    }
DELIVER_MAX_ATTEMPTS = env.int("DELIVER_MAX_ATTEMPTS", default=6)
# The sweep re-queues inbound and outbound rows still pending after this long (broker
# was down), and `sending` rows whose worker died mid-call after the longer age.
OUTBOX_SWEEP_AFTER_SECONDS = env.int("OUTBOX_SWEEP_AFTER_SECONDS", default=60)
SENDING_STALE_AFTER_SECONDS = env.int("SENDING_STALE_AFTER_SECONDS", default=600)
# With more tasks than this already waiting in the broker, the sweeps wait: rows in a long
# queue are slow, not lost.
SWEEP_MAX_BACKLOG = env.int("SWEEP_MAX_BACKLOG", default=500)
# Two SMS from one phone are handled one at a time, in order, under this lock.
PHONE_LOCK_SECONDS = env.int("PHONE_LOCK_SECONDS", default=30)

# Seconds between two runs of each sweep.
SWEEP_INTERVAL_SECONDS = env.float("SWEEP_INTERVAL_SECONDS", default=30.0)

# Bulk sends (bulk/): a running batch hands over one tick's worth of messages every
# BULK_TICK_SECONDS, at the shortcode's messages per second less the share of it kept for
# replies (BULK_REPLY_RESERVE, 0 to 0.9); a batch holds at most BULK_MAX_RECIPIENTS.
BULK_TICK_SECONDS = env.float("BULK_TICK_SECONDS", default=1.0)
BULK_REPLY_RESERVE = env.float("BULK_REPLY_RESERVE", default=0.2)
if not 0 <= BULK_REPLY_RESERVE <= 0.9:
    raise ImproperlyConfigured("BULK_REPLY_RESERVE must be between 0 and 0.9.")
BULK_MAX_RECIPIENTS = env.int("BULK_MAX_RECIPIENTS", default=100_000)

# Periodic jobs: celery beat, or a thread of the serving process on the embedded default
# (smsgate/embedded_beat.py). Keep task names stable across releases: during a rolling
# deploy an old beat may schedule for new workers and the other way round.
CELERY_BEAT_SCHEDULE = {
    "outbox-sweep": {"task": "delivery.tasks.outbox_sweep", "schedule": SWEEP_INTERVAL_SECONDS},
    "inbound-sweep": {"task": "conversations.tasks.inbound_sweep", "schedule": SWEEP_INTERVAL_SECONDS},
    "channel-log-purge": {"task": "delivery.tasks.channel_log_purge", "schedule": 3600.0},
    "report-payload-purge": {"task": "delivery.tasks.report_payload_purge", "schedule": 3600.0},
    "message-purge": {"task": "delivery.tasks.message_purge", "schedule": 3600.0},
    # Ticks running batches on the embedded default; with a broker, revives a batch whose
    # self-scheduled tick was lost.
    "bulk-tick": {"task": "bulk.tasks.batches_tick", "schedule": BULK_TICK_SECONDS},
    "callback-sweep": {"task": "api.tasks.callback_sweep", "schedule": SWEEP_INTERVAL_SECONDS},
    "idempotency-key-purge": {"task": "api.tasks.idempotency_key_purge", "schedule": 3600.0},
}

# Every line goes through the redacting filter: declared secrets and token-like query
# values masked, phone numbers cut to their last four digits unless LOG_LEVEL is DEBUG.
# runserver's access log (django.server) goes through it too.
# Log lines: "json" (one object per line, for collectors) or "plain" (text, for reading by eye).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'plain'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "delivery.log_filters.RedactingFilter"}},
    "formatters": {
        "plain": {
            "class": "delivery.log_format.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {"class": "delivery.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# Celery keeps the handlers above (and their filter) instead of installing its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Error tracking: Sentry (Django and Celery) when a DSN is set; secrets and phones are
# scrubbed from every event before it leaves (smsgate/sentry.py).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
# The environment Sentry files events under.
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
# Share of requests and tasks traced for performance (0 to 1); errors are always sent.
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    from smsgate.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
