"""
Settings as a deployment gets them: computed when settings.py is imported (so the deploy
checks run in a fresh process with a production environment), every one the code reads
defined there, and every variable read from the environment documented once in README.
"""

import functools
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from conftest import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parents[2]
# What the service reads from the environment, and what the README says it reads.
ENV_READ = re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']|\benv_secret\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def test_production_settings_under_test():
    assert django_settings.DEBUG is False


# Deploy settings ------------------------------------------------------------------------


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, a real secret key, an https origin."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "PUBLIC_BASE"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "smsgate.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "sms.example.com",
        "PUBLIC_BASE_URL": "https://sms.example.com",
        "TRUST_X_FORWARDED_PROTO": "",
    }
    return env | overrides


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Our own interpreter running manage.py or a probe written here: no outside input.
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603


# Run in a production process: `check --deploy`, the SecurityMiddleware in front of a view
# that answers 200, and the DLT matcher; one process answers every test of its environment.
PRODUCTION_PROBE = """
import io
import json
import django
django.setup()
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory

middleware = SecurityMiddleware(lambda request: HttpResponse("ok"))
factory = RequestFactory(HTTP_HOST="sms.example.com")
answers = {
    "health_http": middleware(factory.get("/health/")).status_code,
    "webhook_http": middleware(factory.post("/webhooks/twilio/status/")).status_code,
    "webhook_https": middleware(factory.post("/webhooks/twilio/status/", secure=True)).status_code,
    "webhook_forwarded_https": middleware(
        factory.post("/webhooks/twilio/status/", HTTP_X_FORWARDED_PROTO="https")
    ).status_code,
    "hsts": middleware(factory.get("/admin/", secure=True)).get("Strict-Transport-Security"),
}
out = io.StringIO()
try:
    call_command("check", deploy=True, fail_level="WARNING", stdout=out, stderr=out)
    answers["check"] = {"passed": True, "output": out.getvalue()}
except SystemCheckError as failed:
    answers["check"] = {"passed": False, "output": out.getvalue() + str(failed)}

from templates.content import variable_max_length
from templates.matcher import MatchIndex, TemplateRow

row = TemplateRow(1, "1107161000000000001", "1201", "otp", "transactional", "Code {#var#} ok", ("ACMEBK",))
index = MatchIndex([row], max_length=variable_max_length())
answers["dlt"] = {n: type(index.match(header="ACMEBK", text="Code " + "7" * n + " ok")).__name__ for n in (5, 6)}
print(json.dumps(answers))
"""


@functools.cache
def production_probe(**overrides: str | None) -> dict:
    """What PRODUCTION_PROBE answers in a production environment with `overrides` (None: unset)."""
    overrides = {"DLT_VARIABLE_MAX_LENGTH": None} | overrides  # the code's default unless a test sets it
    env = production_env(**{name: value for name, value in overrides.items() if value is not None})
    for name in (name for name, value in overrides.items() if value is None):
        env.pop(name, None)
    result = run([sys.executable, "-c", PRODUCTION_PROBE], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_check_deploy_is_clean_with_an_https_public_base_url():
    check = production_probe()["check"]
    assert check["passed"], check["output"]
    assert "no issues" in check["output"]


def test_check_deploy_names_what_is_missing_without_https():
    check = production_probe(PUBLIC_BASE_URL="")["check"]
    for warning in ("smsgate.W001", "security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in check["output"]


@pytest.mark.parametrize("trust", ["", "on"])
def test_https_is_enforced_but_health_probes_stay_on_plain_http(trust):
    answers = production_probe(**({"TRUST_X_FORWARDED_PROTO": trust} if trust else {}))

    assert answers["health_http"] == 200
    assert answers["webhook_http"] == 301
    assert answers["webhook_https"] == 200
    assert answers["hsts"] == "max-age=31536000; includeSubDomains; preload"
    # X-Forwarded-Proto is believed only when TRUST_X_FORWARDED_PROTO says so
    assert answers["webhook_forwarded_https"] == (200 if trust else 301)


@pytest.fixture
def https_only(settings):
    """What settings.py sets with an https PUBLIC_BASE_URL and DEBUG off."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health/"]
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    return settings


@pytest.mark.django_db
def test_webhooks_work_over_https_with_the_deploy_settings(https_only, client, django_capture_on_commit_callbacks):
    body = {"from": "+919876543210", "to": "57675", "body": "1", "id": "deploy-1"}
    with django_capture_on_commit_callbacks():
        response = client.post(
            "/webhooks/generic/inbound/",
            body,
            content_type="application/json",
            secure=True,
            headers={"X-Webhook-Secret": WEBHOOK_SECRET},
        )
    assert response.status_code == 200


@pytest.mark.django_db
def test_health_is_not_redirected_with_the_deploy_settings(https_only, client):
    response = client.get("/health/")
    assert response.status_code in (200, 503)
    assert response.headers["Content-Type"] == "application/json"


# Settings consistency: every setting the code reads is defined, and documented once ----


def project_sources() -> list[Path]:
    return [
        path
        for app in ("commands", "conversations", "delivery", "templates", "smsgate", "demo")
        for path in (ROOT / app).rglob("*.py")
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def test_every_setting_the_code_reads_is_defined_in_settings():
    read = set()
    for path in project_sources():
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"\bsettings\.([A-Z][A-Z0-9_]*)\b", text))
        read |= set(re.findall(r"""getattr\(\s*settings\s*,\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    assert sorted(name for name in read if not hasattr(django_settings, name)) == []


def readme_configuration() -> list[str]:
    """The variables named in the first column of README's configuration table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z<][A-Za-z0-9_<>]*)`", line.split("|")[1])
    return names


def settings_env_reads() -> set[str]:
    source = (ROOT / "smsgate" / "settings.py").read_text(encoding="utf-8")
    return {a or b for a, b in ENV_READ.findall(source)}


def test_every_variable_in_the_readme_is_read_by_settings():
    documented = [name for name in readme_configuration() if "<" not in name]
    assert sorted(set(documented) - settings_env_reads()) == []


def test_every_variable_settings_reads_is_in_the_readme():
    patterns = [re.compile(re.sub(r"<[A-Z]+>", "[A-Z0-9]+", name) + "$") for name in readme_configuration()]
    missing = sorted(name for name in settings_env_reads() if not any(p.match(name) for p in patterns))
    assert missing == []


def test_every_variable_is_documented_once():
    names = readme_configuration()
    assert sorted({name for name in names if names.count(name) > 1}) == []


# DLT_VARIABLE_MAX_LENGTH from the environment reaches the matcher (PRODUCTION_PROBE's "dlt").
@pytest.mark.parametrize("limit,six_characters", [("5", "Miss"), ("", "Match")])
def test_dlt_variable_max_length_from_the_environment_changes_what_matches(limit, six_characters):
    answers = production_probe(**({"DLT_VARIABLE_MAX_LENGTH": limit} if limit else {}))
    assert answers["dlt"] == {"5": "Match", "6": six_characters}
