from django.apps import AppConfig


class DemoConfig(AppConfig):
    """
    The demo: `seed_demo`'s data and the services it configures (register, balance,
    support, and the offers endpoint its HTTP command calls). Nothing else imports it.
    """

    name = "demo"
    verbose_name = "Demo"

    def ready(self):
        # Importing registers the demo's handler (balance; register and support are flows) and its queued task.
        from demo import handlers, tasks  # noqa: F401
