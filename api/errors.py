"""
The send API's error shape, one for every 4xx it answers:

    {"code": "dlt_no_template", "detail": "A sentence saying why.", ...extra}

`code` is machine-readable and stable; `detail` is for a person; a refusal may add fields
of its own (`nearest_template_id`, `message_id`). A request that fails field validation
answers 400 `invalid` with `fields`: {field name: [sentences]}.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback


class ApiRefusal(exceptions.APIException):
    """A request we understood and will not carry out: `code`, a sentence, and extra fields for the body."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "refused"
    default_detail = "The request was refused."

    def __init__(self, code: str, detail: str, *, status_code: int | None = None, **extra: Any):
        super().__init__(detail=detail, code=code)
        self.code = code
        self.extra = extra
        if status_code is not None:
            self.status_code = status_code


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The body of an error answer."""
    return {"code": code, "detail": detail, **extra}


def _field_errors(detail: Any) -> dict[str, list[str]] | list[str]:
    if isinstance(detail, dict):
        return {str(name): _messages(value) for name, value in detail.items()}
    return _messages(detail)


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [f"{name}: {message}" for name, value in detail.items() for message in _messages(value)]
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item)]
    return [str(detail)]


def api_error(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(status, body, headers) of the answer to `exc` in the error shape; None when it is no API error."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, ApiRefusal):
        body = error_body(exc.code, str(exc.detail), **exc.extra)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _field_errors(exc.detail)
        if isinstance(fields, list):
            fields = {"non_field_errors": fields}
        name, messages = next(iter(fields.items()), ("non_field_errors", ["The request is not valid."]))
        summary = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        body = error_body("invalid", summary, fields=fields)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        body = error_body(str(code), " ".join(_messages(exc.detail)))
    return exc.status_code, body, headers


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """
    DRF's exception handler, answering in the error shape above. Anything not an API
    exception is left to Django (a real fault, a 500 that Sentry records).
    """
    answer = api_error(exc)
    if answer is None:
        return None
    status_code, body, headers = answer
    set_rollback()
    return Response(body, status=status_code, headers=headers)
