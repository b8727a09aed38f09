"""
Write the README's screenshots to docs/screenshots/: the admin dashboard (1280x800 and a
phone's 390x844), a conversation, the demo shortcode's page and the send form.

Self-contained: a throwaway SQLite database in a temporary folder, migrated and seeded
with `seed_demo`; a day of demo traffic run through the real pipeline (`simulate_sms`, at
past hours); delivery reports recorded as an aggregator would send them (most delivered,
some undelivered); the admin served by this process; headless Chromium with the test
suite's flags. Touches nothing outside the temporary folder and docs/screenshots/.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

import argparse
import datetime as dt
import io
import os
import random
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "screenshots"  # noqa: S105 (a throwaway database's only user)
PHONES = ["+919876543210", "+919812345678", "+919900112233", "+918800123456", "+917700654321"]
# What the demo's subscribers send, in order per phone: register, balance, support.
CONVERSATION = ["1", "Asha", "2", "BAL", "3", "No signal since morning", "hello", "2"]


def environment(folder: Path, port: int) -> None:
    """The embedded default on a database of our own: no broker, no Redis, DEBUG for the dev key."""
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "smsgate.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{folder / 'screenshots.sqlite3'}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SMS_DEFAULT_PROVIDER": "console",
            "LOG_LEVEL": "ERROR",
        }
    )
    sys.path.insert(0, str(ROOT))


def traffic(now: dt.datetime) -> None:
    """A day of demo SMS at past hours, each through the whole pipeline, then their reports."""
    from django.core.management import call_command
    from freezegun import freeze_time

    from delivery.models import Message
    from delivery.reports import message_status_advance
    from delivery.statuses import Direction, Status

    rng = random.Random(57675)  # the same pictures every run
    for index, phone in enumerate(PHONES * 3):
        start = now - dt.timedelta(hours=23 - index * 1.5, minutes=rng.randint(0, 50))
        for step, text in enumerate(CONVERSATION[: 4 + index % 5]):
            with freeze_time(start + dt.timedelta(minutes=step)):
                call_command("simulate_sms", "--from", phone, "--to", "57675", text, stdout=io.StringIO())
    for message in Message.objects.filter(direction=Direction.OUTBOUND, status=Status.SENT).order_by("id"):
        roll = rng.random()
        at = message.sent_at + dt.timedelta(seconds=rng.choice([2, 3, 4, 6, 9, 15, 40]))
        if roll < 0.8:
            message_status_advance(message_id=message.id, new_status=Status.DELIVERED, at=at)
        elif roll < 0.93:
            message_status_advance(
                message_id=message.id,
                new_status=Status.UNDELIVERED,
                at=at,
                error_code="EXPIRED",
                error_message="Absent subscriber: the handset was off until the validity period ended.",
            )
        else:
            message_status_advance(
                message_id=message.id,
                new_status=Status.REJECTED,
                at=at,
                error_code="DLT-631",
                error_message="Template inactive at the operator.",
            )


def serve(port: int) -> threading.Thread:
    """The admin on 127.0.0.1:port from this process (static files included)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler, allow_reuse_address=True)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,800")
    options.add_argument("--hide-scrollbars")
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def viewport(driver, width: int, height: int) -> None:
    """Make the page area, not the window, `width` x `height` (headless windows have no chrome, but be sure)."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))


def send_preview(driver) -> str:
    """The send form previewing a text that departs from its template: the refusal and the nearest template."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    shortcodes = Select(driver.find_element(By.NAME, "shortcode"))
    shortcodes.select_by_visible_text(next(o.text for o in shortcodes.options if o.text.startswith("57675")))
    driver.find_element(By.NAME, "phone").send_keys("98765 43210")
    driver.find_element(By.NAME, "text").send_keys("Hi Asha, your balance is Rs 250")
    driver.find_element(By.CSS_SELECTOR, "input[name=preview]").click()
    return "#send-preview"


def shoot(
    driver, base: str, out: Path, name: str, path: str, *, size=(1280, 800), ready: str = "#content", before=None
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    viewport(driver, *size)
    driver.get(base + path)
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ready)))
    if before is not None:
        shown = before(driver)
        WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, shown)))
    target = out / f"{name}.png"
    driver.save_screenshot(str(target))
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="smsgate-screenshots-") as folder:
        environment(Path(folder), args.port)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.urls import NoReverseMatch, reverse
        from django.utils import timezone

        from commands.models import Shortcode

        call_command("migrate", verbosity=0, interactive=False)
        call_command("seed_demo", stdout=io.StringIO())
        get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)
        traffic(timezone.now())

        serve(args.port)
        base = f"http://127.0.0.1:{args.port}"
        driver = browser()
        try:
            from selenium.webdriver.common.by import By

            driver.get(base + "/admin/login/?next=/admin/")
            driver.find_element(By.NAME, "username").send_keys("admin")
            driver.find_element(By.NAME, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
            # The admin's app sidebar closed, as a returning user keeps it: the pages get the width.
            driver.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")

            shoot(driver, base, out, "dashboard", "/admin/", ready="#console-dashboard svg")
            shoot(driver, base, out, "dashboard-phone", "/admin/", size=(390, 844), ready="#console-dashboard svg")
            shortcode = Shortcode.objects.get(number="57675")
            shoot(driver, base, out, "shortcode", reverse("admin:commands_shortcode_change", args=[shortcode.pk]))
            shoot(driver, base, out, "send", "/admin/console/send/", ready="#send-form", before=send_preview)
            missing = []
            try:
                conversation = reverse("console:conversation") + f"?phone={PHONES[0].replace('+', '%2B')}"
            except NoReverseMatch:
                missing.append("conversation (no console:conversation page in this checkout)")
            else:
                shoot(driver, base, out, "conversation", conversation)
        finally:
            driver.quit()
    for what in missing:
        print(f"not written: {what}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
