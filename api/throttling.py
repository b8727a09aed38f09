"""Each API client's own request rate (ApiClient.rate), counted in the cache (Redis with REDIS_URL)."""

from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiClient


class ApiClientRateThrottle(SimpleRateThrottle):
    """At most the client's `rate` requests per period; the next answers 429 `throttled` with Retry-After."""

    scope = "api_client"
    cache_format = "throttle:api_client:%(ident)s"

    def __init__(self):
        # The rate is the client's, known only once the request is authenticated.
        pass

    def allow_request(self, request, view):
        client = request.auth
        if not isinstance(client, ApiClient):
            return True
        self.rate = client.rate
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.cache_format % {"ident": request.auth.pk}
