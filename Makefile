# make demo: run the service on the embedded default (SQLite, local memory, eager tasks, console provider).
# make test: run the whole suite. With DATABASE_URL, REDIS_URL and CELERY_BROKER_URL set it runs on
#            Postgres, Redis and a real Celery worker, services tests included.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8000
# The demo's code 4 signs its calls to the demo offers endpoint with this (a demo-only value).
DEMO_ENV = DJANGO_DEBUG=1 PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) HANDLER_SECRET_DEMO_OFFERS=demo-offers-secret

.PHONY: demo test venv browser lint bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

demo: venv
	mkdir -p var
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	$(DEMO_ENV) DJANGO_SUPERUSER_PASSWORD=admin $(BIN)/python manage.py createsuperuser --noinput \
		--username admin --email admin@example.com 2>/dev/null || true
	@echo ""
	@echo "  smsgate demo on http://127.0.0.1:$(PORT)/"
	@echo "  Admin:  http://127.0.0.1:$(PORT)/admin/  (log in as admin / admin)"
	@echo "  Try:    curl -X POST 127.0.0.1:$(PORT)/sms-handler -d From=+919876543210 -d To=57675 -d Body=2"
	@echo ""
	$(DEMO_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# On the embedded default the suite runs in two processes, one per core, each with its own
# in-memory database; with the real services in one, since they share a cache and a broker.
# Other pytest arguments replace these: `make test PYTEST_ARGS="-m services"` (CI, on RabbitMQ).
PYTEST_ARGS ?= $(if $(DATABASE_URL),,-n 2)

# The admin's browser tests drive Debian's Chromium through its own chromedriver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: venv browser
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every performance target from one run, as one table (bench/README.md); QUICK=1 for a short trial.
bench: venv
	bash bench/all.sh

clean:
	rm -rf $(VENV) var/*.sqlite3* .pytest_cache
