"""A stand-in for another team's system, so the demo's HTTP command (code 4) has something to call.

Mounted only with DEBUG on (smsgate/urls.py).
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

# Each fits one DLT variable (30 characters at most), so the reply matches its template.
OFFERS = ("10% off recharges over Rs 199", "Double data on weekend packs")


@csrf_exempt
@require_POST
def offers(request):
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        payload = {}
    pick = sum(map(ord, str(payload.get("phone", "")))) % len(OFFERS)
    return JsonResponse({"reply": f"Today's offer: {OFFERS[pick]}. Reply 3 for help."})
