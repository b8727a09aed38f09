from django.core.management.base import BaseCommand, CommandError

from templates.services import ImportFileError, ImportRow, templates_import_csv


class Command(BaseCommand):
    help = (
        "Load a DLT portal's template export (CSV). Prints per row: created, updated or rejected with the "
        "reason. Columns are found by the names portals use (Template ID, Template Content, Header, Category, "
        "Status, Entity ID...), case-insensitively."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the CSV file exported from the DLT portal")
        parser.add_argument("--dry-run", action="store_true", help="check every row and report, save nothing")

    def handle(self, *args, file, dry_run, **options):
        try:
            report = templates_import_csv(file=file, dry_run=dry_run)
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {file}") from exc
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        styles = {ImportRow.CREATED: self.style.SUCCESS, ImportRow.UPDATED: self.style.SUCCESS}
        for row in report.rows:
            line = f"line {row.line}: {row.template_id or '(no template ID)'} {row.outcome}"
            if row.reason:
                line += f": {row.reason}"
            self.stdout.write(line, style_func=styles.get(row.outcome, self.style.WARNING))
        self.stdout.write(report.summary())
