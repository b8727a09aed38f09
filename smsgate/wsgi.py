import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsgate.settings")
django.setup(set_prefix=False)

from smsgate.lanes import LanedApplication  # noqa: E402  (needs the apps loaded)

application = LanedApplication()

# Serving without a broker there is no celery beat: this process runs the sweeps itself.
from smsgate.embedded_beat import embedded_beat_start  # noqa: E402

embedded_beat_start()
