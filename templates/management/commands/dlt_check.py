from django.core.management.base import BaseCommand, CommandError

from templates.content import parse_content, placeholders
from templates.models import Template
from templates.services import template_resolve


class Command(BaseCommand):
    help = (
        "Check a text against the approved DLT templates of a header: print the template it matches with its "
        "DLT template ID and the variable values, or exit 1 with why none does."
    )

    def add_arguments(self, parser):
        parser.add_argument("--header", required=True, help="the sender ID, exactly as registered (case matters)")
        parser.add_argument("text", help="the message text, exactly as it would be sent")

    def handle(self, *args, header, text, **options):
        resolution = template_resolve(header=header, text=text)
        if not resolution.matched:
            # Exit status 1, the reason on stderr: usable from scripts and CI checks.
            raise CommandError(resolution.why, returncode=1)
        template = Template.objects.get(dlt_template_id=resolution.template_id)
        self.stdout.write(
            self.style.SUCCESS(f"Matches DLT template {resolution.template_id}")
            + (f" ({template.name})" if template.name else "")
        )
        self.stdout.write(f"  entity (PE ID): {resolution.entity_id}")
        promotional = " (promotional: 09:00-21:00 IST only)" if resolution.promotional else ""
        self.stdout.write(f"  category: {resolution.category}{promotional}")
        self.stdout.write(f"  content: {template.content}")
        kinds = placeholders(parse_content(template.content))
        for number, (kind, value) in enumerate(zip(kinds, resolution.values, strict=True), start=1):
            self.stdout.write(f"  value {number} {{#{kind}#}}: {value}")
