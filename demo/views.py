"""A stand-in for another team's system, so the demo's HTTP command (code 4) has something to call.

Mounted only with DEBUG on (smsgate/urls.py).
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from delivery.redaction import env_secret
from delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_valid

# The variable the demo's code 4 signs its calls with (seed_demo's `secret_env`); `make demo` sets it.
OFFERS_SECRET_ENV = "HANDLER_SECRET_DEMO_OFFERS"  # noqa: S105 (a variable name, not its value)

# Each fits one DLT variable (30 characters at most), so the reply matches its template.
OFFERS = ("10% off recharges over Rs 199", "Double data on weekend packs")


@csrf_exempt
@require_POST
def offers(request):
    # As the other team's system would: only calls signed with the shared secret get an answer.
    secret = env_secret(OFFERS_SECRET_ENV)
    if not secret or not signature_valid(
        secret=secret,
        body=request.body,
        timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
        signature=request.headers.get(SIGNATURE_HEADER, ""),
    ):
        return JsonResponse({"error": "bad or missing signature"}, status=403)
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        payload = {}
    pick = sum(map(ord, str(payload.get("phone", "")))) % len(OFFERS)
    return JsonResponse({"reply": f"Today's offer: {OFFERS[pick]}. Reply 3 for help."})
