from django.apps import AppConfig


class BulkConfig(AppConfig):
    """Batches: many recipients sent at the shortcode's speed behind replies."""

    name = "bulk"
    verbose_name = "Bulk sends"

    def ready(self):
        from bulk import tasks  # noqa: F401  (registers the Celery tasks services queue by name)
