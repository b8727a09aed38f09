from decimal import Decimal

from django.db import migrations, models


def balances_copy(apps, schema_editor):
    """Carry the balances Contact held into demo accounts, before conversations drops the column."""
    Contact = apps.get_model("conversations", "Contact")
    Account = apps.get_model("demo", "Account")
    Account.objects.bulk_create(
        [
            Account(phone=phone, balance=balance)
            for phone, balance in Contact.objects.exclude(balance=0).values_list("phone", "balance")
        ],
        ignore_conflicts=True,
    )


def balances_restore(apps, schema_editor):
    Contact = apps.get_model("conversations", "Contact")
    Account = apps.get_model("demo", "Account")
    for phone, balance in Account.objects.values_list("phone", "balance"):
        Contact.objects.filter(phone=phone).update(balance=balance)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("conversations", "0001_initial"),
    ]
    run_before = [
        ("conversations", "0002_remove_contact_balance"),
    ]

    operations = [
        migrations.CreateModel(
            name="Account",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("phone", models.CharField(max_length=20, unique=True, verbose_name="phone")),
                (
                    "balance",
                    models.DecimalField(decimal_places=2, default=Decimal("0.00"), max_digits=12, verbose_name="balance"),
                ),
            ],
            options={
                "verbose_name": "demo account",
                "verbose_name_plural": "demo accounts",
                "ordering": ("phone",),
            },
        ),
        migrations.RunPython(balances_copy, balances_restore),
    ]
