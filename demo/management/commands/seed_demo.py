"""
`seed_demo`: the demo shortcode 57675 with its commands and DLT templates, and the staff
and agent groups. Idempotent: running it again brings the demo back to this state.
"""

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from commands.models import Alias, Shortcode
from commands.models import Command as ShortcodeCommand
from templates.models import Header, PrincipalEntity, Template

DEMO_SHORTCODE = "57675"
DEMO_HEADER = "SMSGTE"
DEMO_ENTITY = ("smsgate demo services", "1201170000000000001")
BALANCE_TEMPLATE_ID = "1107170000000000004"

# Every text the demo can send, registered as approved service-implicit DLT templates, so
# the demo works end to end at any hour as a real Indian shortcode would.
DEMO_TEMPLATES = [
    ("1107170000000000001", "Menu", "Reply with a code: 1 register, 2 balance, 3 support, 4 offers."),
    ("1107170000000000002", "Register: ask name", "Welcome! Please reply with your name."),
    ("1107170000000000003", "Register: done", "Thank you {#var#}, you are registered."),
    (BALANCE_TEMPLATE_ID, "Balance", "Hi {#var#}, your balance is Rs {#var#}."),
    ("1107170000000000005", "Balance: unregistered", "You are not registered yet. Send 1 to register."),
    ("1107170000000000006", "Support: ask issue", "Please describe your issue in one SMS."),
    ("1107170000000000007", "Support: ticket", "Ticket {#alphanumeric#} opened. Our team will call you back."),
    ("1107170000000000008", "Offers", "Today's offer: {#var#}. Reply 3 for help."),
    ("1107170000000000009", "Unknown code", "Sorry, we did not understand that. Reply with a code from the menu."),
    ("1107170000000000010", "Help", "Reply with a code from the menu. Reply STOP to opt out."),
    (
        "1107170000000000011",
        "Opt-out confirmation",
        "You have been unsubscribed and will receive no more messages. Reply START to resubscribe.",
    ),
    ("1107170000000000012", "Opt-in confirmation", "You are subscribed again. Reply HELP for help."),
    (
        "1107170000000000013",
        "Service unavailable",
        "Sorry, this service is unavailable right now. Please try again later.",
    ),
]

# code, name, handler, config, aliases
DEMO_COMMANDS = [
    ("1", "Register", "register", {}, ["REG", "JOIN"]),
    ("2", "Balance", "balance", {"template": BALANCE_TEMPLATE_ID, "values": ["{name}", "{balance}"]}, ["BAL"]),
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
    "demo": ["view"],
}
AGENT_PERMISSIONS = {
    "commands": ["view"],
    "delivery": ["view"],
    "conversations": ["view"],
    "templates": ["view"],
    "demo": ["view"],
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
                "country": "IN",
                "dlt_bound": True,
                "sender_id": DEMO_HEADER,
            },
        )
        self.seed_templates()
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

    def seed_templates(self):
        entity, _ = PrincipalEntity.objects.update_or_create(pe_id=DEMO_ENTITY[1], defaults={"name": DEMO_ENTITY[0]})
        header, _ = Header.objects.update_or_create(
            sender_id=DEMO_HEADER, defaults={"entity": entity, "category": Header.Category.SERVICE, "active": True}
        )
        for dlt_template_id, name, content in DEMO_TEMPLATES:
            template, _ = Template.objects.update_or_create(
                dlt_template_id=dlt_template_id,
                defaults={
                    "entity": entity,
                    "name": name,
                    "category": Template.Category.SERVICE_IMPLICIT,
                    "content": content,
                    "status": Template.Status.APPROVED,
                },
            )
            template.headers.set([header])
