"""
`seed_demo`: the demo shortcode 57675 with its commands and DLT templates, and the staff
and agent groups. Idempotent: running it again brings the demo back to this state.
"""

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from commands.models import Alias, Shortcode
from commands.models import Command as ShortcodeCommand
from console.roles import ROLES, roles_sync
from conversations.flows import flow_problems
from conversations.models import Flow, FlowStep
from demo.views import OFFERS_SECRET_ENV
from templates.models import Header, PrincipalEntity, Template

DEMO_SHORTCODE = "57675"
DEMO_HEADER = "SMSGTE"
DEMO_MENU = "Reply with a code: 1 register, 2 balance, 3 support, 4 offers."
DEMO_ENTITY = ("smsgate demo services", "1201170000000000001")
BALANCE_TEMPLATE_ID = "1107170000000000004"

# Every text the demo can send, registered as approved service-implicit DLT templates, so
# the demo works end to end at any hour as a real Indian shortcode would.
DEMO_TEMPLATES = [
    ("1107170000000000001", "Menu", DEMO_MENU),
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
    # The register and support flows' own texts.
    ("1107170000000000021", "Flows: ask name again", "Please reply with your name."),
    ("1107170000000000022", "Flows: gave up", "Too many invalid answers. Please start again."),
    ("1107170000000000023", "Flows: timed out", "Your session timed out. Send {#numeric#} to start again."),
]

# The register and support services, built as flows (as staff would in the admin):
# slug, name, completion action, final reply, time-out reply, [(step key, prompt, error reply)].
DEMO_FLOWS = [
    (
        "register",
        "Register",
        "contact",
        "Thank you {name}, you are registered.",
        "Your session timed out. Send 1 to start again.",
        [("name", "Welcome! Please reply with your name.", "Please reply with your name.")],
    ),
    (
        "support",
        "Support",
        "ticket",
        "Ticket {reference} opened. Our team will call you back.",
        "Your session timed out. Send 3 to start again.",
        [("issue", "Please describe your issue in one SMS.", "Please describe your issue in one SMS.")],
    ),
]

# code, name, handler, config, aliases
DEMO_COMMANDS = [
    ("1", "Register", "flow", {"flow": "register"}, ["REG", "JOIN"]),
    ("2", "Balance", "balance", {"template": BALANCE_TEMPLATE_ID, "values": ["{name}", "{balance}"]}, ["BAL"]),
    ("3", "Support", "flow", {"flow": "support"}, ["HELPDESK"]),
    (
        "4",
        "Offers",
        "http",
        {"endpoint": "{base}/demo/offers/", "timeout": 3, "secret_env": OFFERS_SECRET_ENV},
        ["OFFERS"],
    ),
]


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
                "menu_text": DEMO_MENU,
            },
        )
        self.seed_templates()
        self.seed_flows(shortcode)
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

        # The roles are the console's (console/roles.py); both may also read the demo's accounts,
        # which roles_sync leaves alone as the demo is not an app the roles govern.
        roles_sync()
        demo_view = Permission.objects.filter(content_type__app_label="demo", codename__startswith="view_")
        for group in Group.objects.filter(name__in=ROLES):
            group.permissions.add(*demo_view)

        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} shortcode {shortcode.number} on provider '{shortcode.provider}' with codes "
            f"{', '.join(c[0] for c in DEMO_COMMANDS)}; groups 'Business staff' and 'Support agents'."
        )

    def seed_flows(self, shortcode):
        """The demo's flows, exactly as DEMO_FLOWS says: steps added, changed or removed to match."""
        for slug, name, action, final, timed_out, steps in DEMO_FLOWS:
            flow, _ = Flow.objects.update_or_create(
                slug=slug,
                defaults={
                    "shortcode": shortcode,
                    "name": name,
                    "active": True,
                    "completion_action": action,
                    "completion_reply": final,
                    "timeout_reply": timed_out,
                    "cancel_reply": "",
                },
            )
            for position, (key, prompt, error_reply) in enumerate(steps):
                FlowStep.objects.update_or_create(
                    flow=flow,
                    key=key,
                    defaults={
                        "position": position,
                        "answer_key": key,
                        "prompt": prompt,
                        "prompt_template": "",
                        "input_kind": FlowStep.InputKind.TEXT,
                        "error_reply": error_reply,
                        "next_step": "",
                    },
                )
            flow.steps.exclude(key__in=[step[0] for step in steps]).delete()
            flow.options.all().delete()
            problems = flow_problems(flow)
            if problems:
                raise CommandError(f"The demo flow {slug!r} cannot run: {' '.join(problems)}")

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
