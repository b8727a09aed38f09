"""
API authentication: `Authorization: Token <token>` (or `Bearer <token>`) names an ApiClient.

After it, `request.auth` is the ApiClient and `request.user` an ApiClientUser standing
for it (authenticated, never staff: an API token opens no admin page). An unknown, revoked
or malformed token is 401; no header at all leaves the request anonymous, which every API
view refuses (IsApiClient).
"""

from dataclasses import dataclass

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from api.models import ApiClient, token_hash

KEYWORDS = ("token", "bearer")
# last_used_at is written at most this often per client, not on every request.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class ApiClientUser:
    """The request's user when an API client authenticated: what DRF and throttling read of a user."""

    client: ApiClient

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> int:
        return self.client.pk

    @property
    def id(self) -> int:
        return self.client.pk

    def __str__(self):
        return f"API client {self.client.name}"


class ApiClientAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <token>` or `Bearer <token>` -> (ApiClientUser, ApiClient)."""

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower().decode(errors="replace") not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Send one token: 'Authorization: Token <token>'.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        client = ApiClient.objects.filter(token_hash=token_hash(token), active=True).first()
        if client is None:
            raise exceptions.AuthenticationFailed("The token is not valid.")
        _last_used_touch(client)
        return ApiClientUser(client), client

    def authenticate_header(self, request):
        return 'Token realm="api"'


def _last_used_touch(client: ApiClient) -> None:
    now = timezone.now()
    if client.last_used_at is None or (now - client.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        client.last_used_at = now


class IsApiClient(BasePermission):
    """Only a request whose token named an active ApiClient."""

    message = "Authentication credentials were not provided: send 'Authorization: Token <token>'."

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiClient)


class ApiClientAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes ApiClientAuthentication."""

    target_class = ApiClientAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` (or `Bearer <token>`): the API client's token, shown once in the admin.",
        }
