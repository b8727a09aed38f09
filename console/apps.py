from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    """The admin console's own pages: dashboard, conversation per phone, send form, roles."""

    name = "console"
    verbose_name = "Console"

    def ready(self):
        from django.contrib import admin

        from console.roles import roles_sync_after_migrate

        # The admin index with the dashboard above the app list. By name rather than by
        # overriding admin/index.html: django.contrib.admin comes first in INSTALLED_APPS,
        # so its own index.html would shadow ours.
        admin.site.index_template = "console/index.html"

        # After every migrate (and test flush), so the permissions of models added since the
        # roles migration join their roles. Sent per app with models; the console has none,
        # and the roles are auth groups, so auth's signal carries it (roles_sync creates every
        # app's permissions itself first, whichever app's signal comes first).
        post_migrate.connect(
            roles_sync_after_migrate, sender=apps.get_app_config("auth"), dispatch_uid="console-roles-sync"
        )
