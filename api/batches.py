"""
Batches in the send API: POST /api/v1/batches/ (accept), GET /api/v1/batches/<id>/
(progress), POST /api/v1/batches/<id>/cancel/. Thin views over bulk.services; errors in
api/errors.py's shape. A client sees and cancels only its own batches.

Up to BULK_MAX_RECIPIENTS recipients in one body: they are checked by one tight loop
(RecipientsField), not a serializer per recipient, so 10,000 are accepted in well under
a second.
"""

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiRefusal
from api.permissions import client_shortcode_get
from api.sending import callback_url_check
from api.serializers import (
    TEXT_MAX_CHARS,
    VARIABLE_MAX_CHARS,
    VARIABLES_MAX,
    ErrorSerializer,
    StrictCharField,
    VariablesField,
)
from api.views import IDEMPOTENCY_PARAMETER, idempotent_response, refusals_as_answer, row_id_of
from bulk.models import Batch
from bulk.services import BatchRefused, RecipientInput, batch_cancel, batch_create, batch_progress

# A batch body of 100,000 recipients with a few variables each stays well under this.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Refusals of a batch as a whole that are the request's fault in form, not in content.
BAD_REQUEST_CODES = {"no_recipients", "too_many_recipients", "text_or_template"}


class RecipientSerializer(serializers.Serializer):
    """One recipient (the schema of RecipientsField's items)."""

    to = serializers.CharField(max_length=32, help_text="E.164, or a national number of the shortcode's country.")
    variables = serializers.DictField(
        child=serializers.CharField(max_length=VARIABLE_MAX_CHARS),
        required=False,
        help_text="This recipient's values, over the batch's `variables`.",
    )
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True)


@extend_schema_field(RecipientSerializer(many=True))
class RecipientsField(serializers.Field):
    """A list of `{to, variables?, reference?}`, checked in one loop (a nested serializer per row is too slow)."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Give a list of recipients.")
        if len(data) > settings.BULK_MAX_RECIPIENTS:
            raise serializers.ValidationError(f"At most {settings.BULK_MAX_RECIPIENTS} recipients in one batch.")
        return [_recipient(row, at) for at, row in enumerate(data)]

    def to_representation(self, value):
        return value


def _recipient(row, at: int) -> RecipientInput:
    """One recipient, held to RecipientSerializer's schema: strings only, nothing coerced."""
    if not isinstance(row, dict):
        raise serializers.ValidationError(f"Recipient {at}: give an object with `to`.")
    unknown = set(row) - {"to", "variables", "reference"}
    if unknown:
        raise serializers.ValidationError(f"Recipient {at}: unknown field {sorted(unknown)[0][:20]!r}.")
    to = row.get("to")
    if not isinstance(to, str) or not 0 < len(to) <= 32:
        raise serializers.ValidationError(f"Recipient {at}: `to` must be a phone number (a string).")
    variables = row.get("variables", {})
    if not isinstance(variables, dict) or len(variables) > VARIABLES_MAX:
        raise serializers.ValidationError(
            f"Recipient {at}: `variables` must be an object of at most {VARIABLES_MAX} strings."
        )
    for key, value in variables.items():
        if not isinstance(value, str) or len(value) > VARIABLE_MAX_CHARS or "\x00" in value or len(key) > 50:
            raise serializers.ValidationError(f"Recipient {at}: variable {key[:20]!r} must be a short string.")
    reference = row.get("reference", "")
    if not isinstance(reference, str) or len(reference) > 100:
        raise serializers.ValidationError(f"Recipient {at}: `reference` must be a string of at most 100 characters.")
    return RecipientInput(to=to, variables=variables, reference=reference)


class BatchCreateSerializer(serializers.Serializer):
    shortcode = StrictCharField(max_length=15, help_text="A shortcode this client may send from.")
    text = StrictCharField(
        max_length=TEXT_MAX_CHARS, required=False, help_text="{name} takes each recipient's variable `name`."
    )
    template = StrictCharField(
        max_length=200, required=False, help_text="DLT template ID or name of an approved template of the shortcode."
    )
    variables = VariablesField(required=False, help_text="Shared by every recipient; a recipient's own win.")
    recipients = RecipientsField(help_text="Up to 100,000 recipients, each with its own variables.")
    reference = StrictCharField(max_length=100, required=False, allow_blank=True)
    callback_url = serializers.URLField(
        max_length=500, required=False, allow_blank=True, help_text="Each message's status changes are POSTed here."
    )

    def validate(self, attrs):
        if bool(attrs.get("text")) == bool(attrs.get("template")):
            raise serializers.ValidationError("Give either `text` or `template`, not both or neither.")
        variables = attrs.get("variables")
        if isinstance(variables, list):  # in placeholder order: keyed by position like a recipient's
            attrs["variables"] = {str(n): value for n, value in enumerate(variables, start=1)}
        return attrs


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    queued = serializers.IntegerField(help_text="Not with the provider yet.")
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed, undelivered or rejected.")
    refused = serializers.IntegerField(help_text="Refused at send time (opted out since, no DLT template).")
    suppressed = serializers.IntegerField(help_text="Skipped: opted out of the shortcode.")
    invalid = serializers.IntegerField(help_text="Skipped: not a number, a missing variable, too long.")
    duplicate = serializers.IntegerField(help_text="Skipped: the number was already a recipient.")
    cancelled = serializers.IntegerField(help_text="Not sent: the batch was cancelled first.")


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    shortcode = serializers.CharField()
    state = serializers.ChoiceField(choices=Batch.State.choices)
    reference = serializers.CharField()
    total = serializers.IntegerField()
    progress = ProgressSerializer()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


def batch_body(batch: Batch) -> dict:
    body = {
        "id": batch.id,
        "shortcode": batch.shortcode,
        "state": batch.state,
        "reference": batch.reference,
        "total": batch.total,
        "progress": batch_progress(batch_id=batch.id).as_dict(),
        "created_at": batch.created_at,
        "finished_at": batch.finished_at,
    }
    return BatchSerializer(body).data


def _client_batch(request: Request, batch_id: str) -> Batch:
    batch = Batch.objects.filter(id=row_id_of(batch_id), client_id=request.auth.pk).first()
    if batch is None:
        raise NotFound("No batch of yours has this id.")
    return batch


PROGRESS_EXAMPLE = {
    "id": 7,
    "shortcode": "57675",
    "state": "running",
    "reference": "diwali-offer",
    "total": 10000,
    "progress": {
        "total": 10000,
        "queued": 7520,
        "sent": 1900,
        "delivered": 480,
        "failed": 3,
        "refused": 1,
        "suppressed": 62,
        "invalid": 30,
        "duplicate": 4,
        "cancelled": 0,
    },
    "created_at": "2026-12-01T10:00:00Z",
    "finished_at": None,
}
BATCH_ID = OpenApiParameter("batch_id", int, OpenApiParameter.PATH, description="Our id of the batch.")
READ_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="no or wrong token"),
    404: OpenApiResponse(ErrorSerializer, description="not_found: no batch of yours has this id"),
    429: OpenApiResponse(ErrorSerializer, description="throttled: over the client's request rate"),
}


class BatchesView(APIView):
    """POST: accept a batch."""

    @extend_schema(
        operation_id="batch_create",
        summary="Send one text or template to many recipients",
        description="Accepted at once (202); sent at the shortcode's messages per second behind replies. "
        "Follow it at GET /api/v1/batches/{id}/ and its messages at GET /api/v1/messages/?batch={id}.",
        request=BatchCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            202: BatchSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="invalid, no_recipients, too_many_recipients, callback_url_not_allowed"
            ),
            401: READ_ERRORS[401],
            403: OpenApiResponse(ErrorSerializer, description="shortcode_not_allowed"),
            409: OpenApiResponse(ErrorSerializer, description="idempotency_key_reused"),
            413: OpenApiResponse(ErrorSerializer, description="too_large: the body is over 64 MB"),
            422: OpenApiResponse(
                ErrorSerializer,
                description="template_not_found, template_ambiguous, dlt_no_template (the first recipient's text "
                "matches no approved template), nothing_to_send, callback_secret_unset",
            ),
            429: READ_ERRORS[429],
        },
        examples=[
            OpenApiExample(
                "Text with variables",
                value={
                    "shortcode": "57675",
                    "text": "Hi {name}, your Diwali offer: {offer}.",
                    "variables": {"offer": "10% off"},
                    "recipients": [
                        {"to": "+919876543210", "variables": {"name": "Asha"}, "reference": "cust-1"},
                        {"to": "9876543211", "variables": {"name": "Ravi", "offer": "15% off"}},
                    ],
                    "reference": "diwali-offer",
                },
                request_only=True,
            ),
            OpenApiExample(
                "DLT template",
                value={
                    "shortcode": "57675",
                    "template": "1107161234567890123",
                    "recipients": [{"to": "+919876543210", "variables": {"1": "Asha", "2": "4521"}}],
                },
                request_only=True,
            ),
            OpenApiExample(
                "Accepted",
                value={**PROGRESS_EXAMPLE, "state": "accepted"},
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isascii() and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise ApiRefusal(
                "too_large", "The body is over 64 MB.", status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        client = request.auth

        def work() -> tuple[int, dict]:
            serializer = BatchCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            shortcode = client_shortcode_get(client, data["shortcode"])
            callback_url = callback_url_check(client, data.get("callback_url", ""))
            try:
                batch = batch_create(
                    shortcode=shortcode,
                    recipients=data["recipients"],
                    text=data.get("text", ""),
                    template=data.get("template", ""),
                    variables=data.get("variables"),
                    reference=data.get("reference", ""),
                    callback_url=callback_url,
                    client_id=client.pk,
                    client_name=client.name,
                )
            except BatchRefused as refused:
                code = status.HTTP_400_BAD_REQUEST if refused.code in BAD_REQUEST_CODES else None
                raise ApiRefusal(refused.code, refused.detail, status_code=code, **refused.extra) from None
            return status.HTTP_202_ACCEPTED, batch_body(batch)

        # With an Idempotency-Key a retried upload creates no second batch (api/idempotency.py).
        return idempotent_response(request, refusals_as_answer(work))


class BatchDetailView(APIView):
    """GET: a batch's progress."""

    @extend_schema(
        operation_id="batch_get",
        summary="A batch's progress",
        parameters=[BATCH_ID],
        responses={200: BatchSerializer, **READ_ERRORS},
        examples=[OpenApiExample("Running", value=PROGRESS_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, batch_id: str) -> Response:
        return Response(batch_body(_client_batch(request, batch_id)))


class BatchCancelView(APIView):
    """POST: cancel a batch."""

    @extend_schema(
        operation_id="batch_cancel",
        summary="Cancel a batch",
        description="Nobody pending is sent to; its messages not yet with the provider fail with batch_cancelled.",
        request=None,
        parameters=[BATCH_ID],
        responses={
            200: BatchSerializer,
            **READ_ERRORS,
            409: OpenApiResponse(ErrorSerializer, description="batch_finished: already done or cancelled"),
        },
        examples=[
            OpenApiExample(
                "Cancelled", value={**PROGRESS_EXAMPLE, "state": "cancelled"}, response_only=True, status_codes=["200"]
            )
        ],
    )
    def post(self, request: Request, batch_id: str) -> Response:
        batch = _client_batch(request, batch_id)
        if not batch_cancel(batch_id=batch.id):
            raise ApiRefusal(
                "batch_finished", f"The batch is already {batch.state}.", status_code=status.HTTP_409_CONFLICT
            )
        batch.refresh_from_db()
        return Response(batch_body(batch))


# Included by api/urls.py. Any id segment: the views answer 404 in the API's own shape.
batch_urls = [
    path("api/v1/batches/", BatchesView.as_view(), name="api-batches"),
    path("api/v1/batches/<str:batch_id>/", BatchDetailView.as_view(), name="api-batch"),
    path("api/v1/batches/<str:batch_id>/cancel/", BatchCancelView.as_view(), name="api-batch-cancel"),
]
