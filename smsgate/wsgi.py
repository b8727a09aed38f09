import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")

application = get_wsgi_application()

# Serving without a broker there is no celery beat: this process runs the sweeps itself.
from smsgate.embedded_beat import embedded_beat_start  # noqa: E402  (needs the apps loaded)

embedded_beat_start()
