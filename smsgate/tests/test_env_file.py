"""
Settings from a .env file: read at start when it exists, each variable only where the
environment leaves it unset. Each case starts the settings in a fresh process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
from django.conf import settings
print(json.dumps([settings.SECRET_KEY, settings.SMS_DEFAULT_REGION, settings.SMS_DEFAULT_PROVIDER]))
"""


def settings_with(env_file: Path, **environment: str) -> list[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "SMS_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "smsgate.settings", "DJANGO_ENV_FILE": str(env_file), **environment}
    done = subprocess.run(  # noqa: S603  (our own interpreter and script)
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_variables_come_from_the_env_file_and_the_environment_wins(tmp_path):
    # given: a .env file with a secret key, a region and a provider
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_SECRET_KEY=from-the-env-file\nSMS_DEFAULT_REGION=US\nSMS_DEFAULT_PROVIDER=sinch\n")
    # when: the environment sets the provider too
    secret_key, region, provider = settings_with(env_file, SMS_DEFAULT_PROVIDER="generic")
    # then: the file fills in what the environment leaves unset, and the environment wins
    assert (secret_key, region, provider) == ("from-the-env-file", "US", "generic")


def test_without_the_file_settings_come_from_the_environment_alone(tmp_path):
    secret_key, region, provider = settings_with(tmp_path / "absent.env", DJANGO_SECRET_KEY="from-the-environment")
    assert (secret_key, region, provider) == ("from-the-environment", "IN", "console")
