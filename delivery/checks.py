"""System checks for a deployment's delivery settings (`manage.py check`)."""

from django.conf import settings
from django.core.checks import Warning


def check_public_base_url(app_configs=None, **kwargs):
    """smsgate.W001: with DEBUG off, PUBLIC_BASE_URL must be set."""
    if settings.DEBUG or settings.PUBLIC_BASE_URL:
        return []
    return [
        Warning(
            "PUBLIC_BASE_URL is not set: sends carry no status callback URL, so providers report "
            "delivery only where their account points (if anywhere), and webhook signatures are "
            "checked against the URL this server sees, which behind a TLS-terminating proxy is not "
            "the one the provider signed (Twilio and Plivo webhooks are then refused).",
            hint="Set PUBLIC_BASE_URL to the public https origin, e.g. https://sms.example.com.",
            id="smsgate.W001",
        )
    ]
