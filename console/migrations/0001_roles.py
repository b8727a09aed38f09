"""
The "Business staff" and "Support agents" groups with their permissions (console/roles.py).

It depends on the migrations that created the models the roles governed when it was
written; models added since join their roles through the post_migrate receiver
(console/apps.py), which runs the same roles_sync after every migrate. Naming those apps'
latest migrations here instead would break every database this one already ran on the day
such an app adds a migration (Django refuses an applied migration whose dependency is not).
"""

from django.db import migrations

from console.roles import ROLES, roles_sync


def roles_create(apps, schema_editor):
    roles_sync(apps=apps, using=schema_editor.connection.alias)


def roles_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("commands", "0001_initial"),
        ("templates", "0001_initial"),
        ("delivery", "0001_initial"),
        ("conversations", "0002_remove_contact_balance"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
