from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from commands.models import Alias, Shortcode
from commands.models import Command as ShortcodeCommand

DEMO_SHORTCODE = "57675"

# code, name, handler, config, aliases
DEMO_COMMANDS = [
    ("1", "Register", "register", {}, ["REG", "JOIN"]),
    ("2", "Balance", "balance", {}, ["BAL"]),
    ("3", "Support", "support", {}, ["HELPDESK"]),
    (
        "4",
        "Offers",
        "http",
        {"endpoint": "{base}/demo/offers/", "timeout": 3},
        ["OFFERS"],
    ),
]

# Business staff configure shortcodes; support agents read everything and change nothing.
STAFF_PERMISSIONS = {
    "commands": ["add", "change", "delete", "view"],
    "delivery": ["view"],
    "conversations": ["view"],
    "templates": ["add", "change", "delete", "view"],
}
AGENT_PERMISSIONS = {
    "commands": ["view"],
    "delivery": ["view"],
    "conversations": ["view"],
    "templates": ["view"],
}


def permissions_for(spec: dict[str, list[str]]):
    perms = Permission.objects.none()
    for app_label, actions in spec.items():
        perms |= Permission.objects.filter(
            content_type__app_label=app_label,
            codename__regex=rf"^({'|'.join(actions)})_",
        )
    return perms


class Command(BaseCommand):
    help = "Create (or bring back) the demo shortcode 57675, its commands and the staff and agent groups."

    @transaction.atomic
    def handle(self, *args, **options):
        base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
        shortcode, created = Shortcode.objects.update_or_create(
            number=DEMO_SHORTCODE,
            defaults={
                "name": "Demo services",
                "provider": settings.SMS_DEFAULT_PROVIDER,
                "active": True,
            },
        )
        for code, name, handler_key, config, aliases in DEMO_COMMANDS:
            config = {k: v.format(base=base) if isinstance(v, str) else v for k, v in config.items()}
            command, _ = ShortcodeCommand.objects.update_or_create(
                shortcode=shortcode,
                code=code,
                defaults={
                    "name": name,
                    "handler_key": handler_key,
                    "config": config,
                    "active": True,
                },
            )
            for keyword in aliases:
                Alias.objects.get_or_create(command=command, keyword=keyword)

        staff, _ = Group.objects.get_or_create(name="Business staff")
        staff.permissions.set(permissions_for(STAFF_PERMISSIONS))
        agents, _ = Group.objects.get_or_create(name="Support agents")
        agents.permissions.set(permissions_for(AGENT_PERMISSIONS))

        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} shortcode {shortcode.number} on provider '{shortcode.provider}' with codes "
            f"{', '.join(c[0] for c in DEMO_COMMANDS)}; groups 'Business staff' and 'Support agents'."
        )
