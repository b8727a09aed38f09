"""
The two roles of the admin, defined once: "Business staff" edit configuration,
"Support agents" read the logs and work support tickets.

A role is a Django group whose permissions follow ROLES. `roles_sync` (re)applies the
definition: the data migration console/0001_roles runs it for the models that exist at
that point, and a post_migrate receiver (console/apps.py) runs it after every `migrate`,
so the permissions of models added later join their roles without a new migration.

Within the apps ROLES names (ROLE_APPS), a group holds exactly what ROLES grants: a
permission given by hand there is taken back on the next sync. Permissions of other apps
(the demo's, say) are left as they are, so whoever grants them keeps them.

Nobody gets `delivery.view_full_numbers` from a role: numbers stay masked (last four
digits shown) unless a user is granted it, or is a superuser.
"""

from collections.abc import Iterable
from fnmatch import fnmatchcase

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

BUSINESS_STAFF = "Business staff"
SUPPORT_AGENTS = "Support agents"

# Default model permissions, written as their action; anything else is a custom
# permission's codename on the matching models ("requeue_message").
VIEW = ("view",)
EDIT = ("view", "add", "change", "delete")

# "app_label.model" patterns (fnmatch, model names in lower case) -> what the role may do
# there. Every pattern that matches a model adds to that model's grants.
ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    BUSINESS_STAFF: {
        # Configuration: shortcodes and their commands, DLT templates, flows, API clients,
        # bulk sends and SMPP binds.
        "commands.*": EDIT,
        "templates.*": EDIT,
        "conversations.flow*": EDIT,
        "api.apiclient": EDIT,
        "bulk.batch": EDIT,
        # The SMPP bind's part buffers are the pipeline's: read only.
        "smpp_gateway.*": VIEW,
        # The logs are facts: read only. A number may be put on or taken off the
        # suppression list by hand (recorded with source "admin").
        "api.*": VIEW,
        "bulk.*": VIEW,
        "delivery.*": VIEW,
        "delivery.suppression": ("add", "delete"),
        # The console's send form (console/send.py); the Message admin itself adds nothing.
        "delivery.message": ("add",),
        "conversations.*": VIEW,
    },
    SUPPORT_AGENTS: {
        # Read everything, change no configuration.
        "commands.*": VIEW,
        "templates.*": VIEW,
        "api.*": VIEW,
        "bulk.*": VIEW,
        "smpp_gateway.*": VIEW,
        "conversations.*": VIEW,
        "delivery.*": VIEW,
        # Send a failed message again (delivery.resend records who did it).
        "delivery.message": ("requeue_message",),
        # Work tickets: status and assignee (the tickets admin keeps the rest read-only).
        "conversations.supportticket": ("change",),
    },
}

ROLE_APPS = frozenset(pattern.split(".", 1)[0] for grants in ROLES.values() for pattern in grants)
DEFAULT_ACTIONS = frozenset(EDIT)


def role_codenames(role: str, *, app_label: str, model: str) -> set[str]:
    """The permission codenames `role` holds on one model (lower-case model name)."""
    codenames = set()
    for pattern, grants in ROLES[role].items():
        if fnmatchcase(f"{app_label}.{model}", pattern):
            codenames.update(f"{grant}_{model}" if grant in DEFAULT_ACTIONS else grant for grant in grants)
    return codenames


def roles_sync(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS, verbosity: int = 0) -> dict[str, int]:
    """
    Create both groups if missing and give each exactly its ROLES permissions within
    ROLE_APPS; returns {role: number of permissions it holds there}.

    Every app's permissions are created first (as post_migrate does), so this also works
    inside a migration, where post_migrate has not run yet; `apps` is then the migration's
    historical registry and only the models it knows are granted.
    """
    try:
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
    except LookupError:
        return {}  # auth not migrated yet (a partial migrate): the next migrate syncs
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=verbosity, using=using, apps=apps)
    governed = list(
        Permission.objects.using(using)
        .filter(content_type__app_label__in=ROLE_APPS)
        .values_list("id", "codename", "content_type__app_label", "content_type__model")
    )
    held = {}
    for role in ROLES:
        group, _ = Group.objects.using(using).get_or_create(name=role)
        wanted = set(_granted_ids(role, governed))
        current = set(group.permissions.filter(id__in=[row[0] for row in governed]).values_list("id", flat=True))
        group.permissions.remove(*(current - wanted))
        group.permissions.add(*(wanted - current))
        held[role] = len(wanted)
    return held


def _granted_ids(role: str, permissions: Iterable[tuple[int, str, str, str]]) -> Iterable[int]:
    for permission_id, codename, app_label, model in permissions:
        if codename in role_codenames(role, app_label=app_label, model=model):
            yield permission_id


def roles_sync_after_migrate(sender, *, apps=global_apps, using=DEFAULT_DB_ALIAS, verbosity=0, **kwargs):
    """post_migrate receiver (console/apps.py): `roles_sync` on the registry just migrated."""
    roles_sync(apps=apps, using=using, verbosity=max(verbosity - 1, 0))
