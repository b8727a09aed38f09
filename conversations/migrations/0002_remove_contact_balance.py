# Balances are demo data now (demo.Account); demo's 0001 copies them before this drops the column.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0001_initial"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="contact",
            name="balance",
        ),
    ]
