"""
The send API's views: parse, call one service or selector, answer. Every error answers
in api/errors.py's shape; a POST with an `Idempotency-Key` goes through api/idempotency.py.
"""

from collections.abc import Callable

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import parsers, serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.errors import ApiRefusal, api_error
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import idempotent_answer, request_fingerprint
from api.pagination import MessageCursorPagination
from api.selectors import client_message_get, client_message_list, message_history
from api.sending import SendRequest, api_message_send
from api.serializers import (
    ErrorSerializer,
    MessageAcceptedSerializer,
    MessageDetailSerializer,
    MessageFilterSerializer,
    MessageSendSerializer,
    MessageSerializer,
    SeedAcceptedSerializer,
    SeedSendSerializer,
)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat a request safely: the same key and body return the first answer and send nothing new "
    "(kept 24 hours); the same key with another body is 409.",
)
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="invalid (per field), invalid_number, callback_url_not_allowed"),
    401: OpenApiResponse(ErrorSerializer, description="no or wrong token"),
    403: OpenApiResponse(ErrorSerializer, description="shortcode_not_allowed"),
    409: OpenApiResponse(ErrorSerializer, description="idempotency_key_reused"),
    422: OpenApiResponse(
        ErrorSerializer,
        description="too_long, suppressed, dlt_no_template (with the matcher's why and nearest_template_id), "
        "template_not_found, template_values, callback_secret_unset",
    ),
    429: OpenApiResponse(ErrorSerializer, description="throttled: over the client's request rate"),
}
LIST_PARAMETERS = set(MessageFilterSerializer().fields)
READ_ERRORS = {code: ERRORS[code] for code in (400, 401, 429)}


def idempotent_response(request: Request, produce: Callable[[], tuple[int, dict]]) -> Response:
    """`produce()`'s answer; with an Idempotency-Key, the first answer to this key (see api/idempotency.py)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        answer_status, body = produce()
        return Response(body, status=answer_status)
    answer_status, body, replayed = idempotent_answer(
        client=request.auth,
        key=key,
        method=request.method,
        path=request.path,
        fingerprint=request_fingerprint(method=request.method, path=request.path, data=request.data),
        produce=produce,
    )
    response = Response(body, status=answer_status)
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def refusals_as_answer(work: Callable[[], tuple[int, dict]]) -> Callable[[], tuple[int, dict]]:
    """`work`, with an API error turned into its answer rather than raised (so the idempotency key keeps it)."""

    def produce() -> tuple[int, dict]:
        try:
            return work()
        except APIException as exc:
            answer_status, body, _ = api_error(exc)
            return answer_status, body

    return produce


SEND_EXAMPLES = [
    OpenApiExample(
        "Text",
        value={"to": "+919876543210", "shortcode": "57675", "text": "Your balance is Rs 120.", "reference": "inv-17"},
        request_only=True,
    ),
    OpenApiExample(
        "DLT template",
        value={
            "to": "9876543210",
            "shortcode": "57675",
            "template": "1107161234567890123",
            "variables": ["Asha", "120"],
            "callback_url": "https://example.com/sms-status",
            "reference": "inv-18",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Accepted",
        value={"id": 42, "status": "queued", "encoding": "gsm7", "segments": 1, "reference": "inv-17"},
        response_only=True,
        status_codes=["202"],
    ),
    OpenApiExample(
        "No DLT template",
        value={
            "code": "dlt_no_template",
            "detail": "No approved template of header SMSGTE matches; nearest 1107161234567890123 departs at 5.",
            "message_id": 43,
            "nearest_template_id": "1107161234567890123",
            "departs_at": 5,
        },
        response_only=True,
        status_codes=["422"],
    ),
]
MESSAGE_EXAMPLE = {
    "id": 42,
    "status": "delivered",
    "to": "+919876543210",
    "shortcode": "57675",
    "text": "Your balance is Rs 120.",
    "encoding": "gsm7",
    "segments": 1,
    "reference": "inv-17",
    "callback_url": "",
    "error_code": "",
    "error_message": "",
    "dlt_template_id": "",
    "created_at": "2026-12-01T10:00:00Z",
    "updated_at": "2026-12-01T10:00:03Z",
    "sent_at": "2026-12-01T10:00:01Z",
    "delivered_at": "2026-12-01T10:00:03Z",
}
HISTORY_EXAMPLE = [
    {"status": "queued", "at": "2026-12-01T10:00:00Z", "source": "smsgate", "provider_status": "", "error_code": "",
     "applied": True},
    {"status": "sent", "at": "2026-12-01T10:00:01Z", "source": "smsgate", "provider_status": "", "error_code": "",
     "applied": True},
    {"status": "delivered", "at": "2026-12-01T10:00:03Z", "source": "report", "provider_status": "DELIVRD",
     "error_code": "", "applied": True},
]  # fmt: skip


class MessagesView(APIView):
    """POST: send one message. GET: the client's messages, newest first."""

    pagination_class = MessageCursorPagination

    @extend_schema(
        operation_id="message_send",
        summary="Send one message",
        request=MessageSendSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: MessageAcceptedSerializer, **ERRORS},
        examples=SEND_EXAMPLES,
    )
    def post(self, request: Request) -> Response:
        def work() -> tuple[int, dict]:
            serializer = MessageSendSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            message = api_message_send(client=request.auth, request=SendRequest(**serializer.validated_data))
            body = {
                "id": message.id,
                "status": message.status,
                "encoding": message.encoding,
                "segments": message.segments,
                "reference": message.reference,
            }
            return status.HTTP_202_ACCEPTED, MessageAcceptedSerializer(body).data

        return idempotent_response(request, refusals_as_answer(work))

    @extend_schema(
        operation_id="message_list",
        summary="List messages",
        parameters=[MessageFilterSerializer],
        responses={
            200: inline_serializer(
                "MessagePage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": MessageSerializer(many=True),
                },
            ),
            **READ_ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="not_found: a cursor that is not ours"),
        },
        examples=[
            OpenApiExample(
                "A page",
                value={
                    "next": "https://sms.example.com/api/v1/messages/?cursor=cD0yMDI2",
                    "previous": None,
                    "results": [MESSAGE_EXAMPLE],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        unknown = sorted(set(request.query_params) - LIST_PARAMETERS)
        if unknown:
            raise ValidationError({name[:40]: ["Not a filter of this list."] for name in unknown[:5]})
        # A plain dict, not the QueryDict: an empty `?status=` is then an error, not "no filter".
        filters = MessageFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        messages = client_message_list(client=request.auth, filters=filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(messages, request, view=self)
        return paginator.get_paginated_response(MessageSerializer(page, many=True).data)


class MessageDetailView(APIView):
    """One message with its status history."""

    @extend_schema(
        operation_id="message_get",
        summary="One message with its status history",
        parameters=[OpenApiParameter("message_id", int, OpenApiParameter.PATH, description="Our id of the message.")],
        responses={
            200: MessageDetailSerializer,
            **{code: ERRORS[code] for code in (401, 429)},
            404: OpenApiResponse(ErrorSerializer, description="not_found"),
        },
        examples=[
            OpenApiExample("Delivered", value={**MESSAGE_EXAMPLE, "history": HISTORY_EXAMPLE}, response_only=True)
        ],
    )
    def get(self, request: Request, message_id: str) -> Response:
        message = client_message_get(client=request.auth, message_id=row_id_of(message_id))
        if message is None:
            raise NotFound("No message of yours has this id.")
        message.history = message_history(message)
        return Response(MessageDetailSerializer(message).data)


class SeedSendView(APIView):
    """`POST /send-sms` as the services this one replaces took it: `{to, text}` (or `message`), JSON or form."""

    parser_classes = [parsers.JSONParser, parsers.FormParser]

    @extend_schema(
        operation_id="send_sms",
        summary="Send one message (seed-compatible)",
        request=SeedSendSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={202: SeedAcceptedSerializer, **ERRORS},
        examples=[
            OpenApiExample("Request", value={"to": "+919876543210", "text": "Your OTP is 4821"}, request_only=True),
            OpenApiExample(
                "Accepted",
                value={"id": 44, "message_id": 44, "status": "queued"},
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        def work() -> tuple[int, dict]:
            serializer = SeedSendSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            send = SendRequest(
                to=data["to"],
                shortcode=data.get("shortcode") or _only_shortcode(request.auth),
                text=data.get("text") or data.get("message"),
            )
            message = api_message_send(client=request.auth, request=send)
            return status.HTTP_202_ACCEPTED, {"id": message.id, "message_id": message.id, "status": message.status}

        return idempotent_response(request, refusals_as_answer(work))


def row_id_of(segment: str) -> int:
    """A URL segment as a row id; 0 (no row) for anything else, so it answers 404, never 500."""
    if not (segment.isascii() and segment.isdigit()) or len(segment) > 18:
        return 0
    return int(segment)


def _only_shortcode(client) -> str:
    numbers = list(client.shortcodes.filter(active=True).values_list("number", flat=True)[:2])
    if len(numbers) != 1:
        raise ApiRefusal(
            "shortcode_required",
            "This client may send from several shortcodes (or none): name one as `shortcode`.",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    return numbers[0]
