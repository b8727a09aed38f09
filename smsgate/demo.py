"""A stand-in for another team's system, so the demo's HTTP handler (code 4) has something to call.

Mounted only with DEBUG on.
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

OFFERS = ("10% off recharges above Rs 199 this week", "Double data on weekend packs")


@csrf_exempt
@require_POST
def offers(request):
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        payload = {}
    pick = sum(map(ord, str(payload.get("phone", "")))) % len(OFFERS)
    return JsonResponse({"reply": f"Today's offer: {OFFERS[pick]}. Reply 3 for help."})
