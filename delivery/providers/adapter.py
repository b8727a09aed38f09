"""
A provider described by data, for aggregators without a module of their own.

Each JSON file in delivery/providers/adapters/ becomes a provider named after the file
(`gupshup.json` -> slug "gupshup"); settings.SMS_ADAPTERS (slug -> config) adds more or
replaces a shipped one for a deployment. A config names:

    name, docs                  what it is and where its documents are
    auth                        {"type": "token"}: ?token= = <SLUG>_WEBHOOK_TOKEN (base.verify_webhook_token);
                                {"type": "header", "header": "X-...", "secret": "{env:NAME}"}: shared secret;
                                {"type": "none"}: only with DEBUG on, like any provider whose secret is unset;
                                on /sms-handler and /sms-dlr this credential, never the payload, picks the adapter
    inbound                     field names (a name or a list, first present wins): from, to, body, id
    status                      field names: id, status, error_code, error_message, reference;
                                map (provider word -> ours, case-insensitive), ignored (known, move nothing)
    outbound                    url, method (GET: params in the query; POST: params as `format` "form"
                                or "json"), params, unicode_params (added when the text needs UCS-2),
                                headers, allowed_hosts, and `response`: id_path
                                (dotted JSON path) or id_regex (group 1), optional success_path +
                                success_values, error_path, error_code_path
    opted_out_error_codes       error codes (of a refused send or a report) that mean the number
                                opted out at the aggregator: it goes on our suppression list
    options                     the shortcode settings it offers beyond `outbound_url` (a list of
                                {name, label, kind: text|choice|int|bool, help_text, choices,
                                default...}, base.ProviderOption's fields), used as {option:NAME}

Placeholders in outbound url, params and headers: {to} (E.164), {to_digits}, {from},
{message}, {reference}, {callback_url}, {dlt_template_id}, {dlt_entity_id},
{option:NAME} (the shortcode's value of a declared option, else its default), and
{env:NAME}, read from the environment at send time so no secret is stored in the
database. A parameter that renders empty is left out (an unset DLT id, no callback URL).

A shortcode's provider_config holds its options: `outbound_url` (another URL on the
adapter's host, or one in `allowed_hosts`) and those the config declares. Rows saved
before options were declared may hold the outbound part under "outbound" (URL, method,
params); sends still honour it, but the admin saves only declared options. Either way the
values are staff-editable data: they may not name {env:...} secrets, and a URL must stay
on the adapter's host, otherwise an admin edit could send the aggregator password
somewhere else.

Webhook fields are read from the query string and the body together, because several
Indian aggregators report with GET (Gupshup's delivery report) or put data in the URL.
"""

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from delivery.providers.base import (
    VOUCHED_WHOLE_REQUEST,
    HttpExchange,
    InboundSMS,
    MissingField,
    OutboundSMS,
    PermanentSendError,
    Provider,
    ProviderOption,
    SendResult,
    StatusUpdate,
    Verified,
    WebhookBadRequest,
    WebhookForbidden,
    WebhookRequest,
    constant_time_equals,
    first_of,
    literal_credential_errors,
    outbound_url_refusal,
    request_data,
    status_reference,
    url_origin,
    verify_webhook_token,
    webhooks_open_without_secret,
)
from delivery.providers.http import http_call
from delivery.segments import UCS2, encoding_of
from delivery.statuses import Status

ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"
SLUG = re.compile(r"[a-z0-9_]+")
PLACEHOLDER = re.compile(r"\{(env:[A-Za-z_][A-Za-z0-9_]*|option:[a-z_]+|[a-z_]+)\}")
ENV_PLACEHOLDER = re.compile(r"\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = frozenset(
    {"to", "to_digits", "from", "message", "reference", "callback_url", "dlt_template_id", "dlt_entity_id"}
)
# Query parameters that belong to us, not to the aggregator's payload.
OWN_QUERY_PARAMS = frozenset({"token", "ref"})
# What an aggregator's report may move a message to (never `sending` or `refused`, which are ours alone).
OUR_STATUSES = frozenset(
    {Status.QUEUED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.REJECTED}
)


# The kinds an adapter's own options may take: values that go into the aggregator's request.
ADAPTER_OPTION_KINDS = frozenset({"text", "choice", "int", "bool"})
OUTBOUND_URL_OPTION = ProviderOption(
    "outbound_url",
    "Outbound URL",
    kind="url",
    help_text="Another URL on the aggregator's own host for this shortcode's sends; empty: the adapter's.",
)


class AdapterConfigError(ValueError):
    """An adapter config that cannot work; raised when the registry is built, not at the first SMS."""


class ConfigurableProvider(Provider):
    """One aggregator described by a config dict; see the module docstring for its keys."""

    def __init__(self, slug: str, config: dict[str, Any]):
        if not SLUG.fullmatch(slug):
            raise AdapterConfigError(f"adapter slug {slug!r} must be lower-case letters, digits or _")
        self.slug = slug
        self.config = config
        status = config.get("status", {})
        self.STATUS_MAP = status_map_parse(slug, status.get("map", {}))
        self.IGNORED = frozenset(str(word).strip().lower() for word in status.get("ignored", []))
        self.OPTED_OUT_ERROR_CODES = frozenset(str(code).strip() for code in config.get("opted_out_error_codes", []))
        self.webhook_methods = frozenset(m.upper() for m in config.get("webhook_methods", ["POST"]))
        self._validate()
        self.OPTIONS = (OUTBOUND_URL_OPTION, *self._declared_options())
        if config.get("auth", {}).get("type") == "header":
            self.CREDENTIAL_HEADERS = (config["auth"]["header"],)
        auth = config.get("auth", {"type": "token"})
        # The webhook token rides in the callback URL we give the aggregator (deliver.callback_url).
        self.SECRET_SETTINGS = (f"{slug.upper()}_WEBHOOK_TOKEN",) if self._token_auth() else ()
        self.SECRET_ENV = tuple(sorted(set(ENV_PLACEHOLDER.findall(json.dumps(config)))))
        self.SENSITIVE_HEADERS = tuple(
            name
            for name, template in {
                **config["outbound"].get("headers", {}),
                **({auth["header"]: auth["secret"]} if auth.get("type") == "header" else {}),
            }.items()
            if ENV_PLACEHOLDER.search(json.dumps(template))
        )

    def webhook_refusal(self) -> str | None:
        if webhooks_open_without_secret():
            return None
        auth = self.config.get("auth", {"type": "token"})
        kind = auth.get("type", "token")
        if kind == "token" and not webhook_token(self.slug):
            return f"{self.slug.upper()}_WEBHOOK_TOKEN not set: every webhook is refused"
        if kind == "header" and not secret_value(auth.get("secret", "")):
            return "its shared secret is not set: every webhook is refused"
        if kind == "none":
            return "no webhook authentication: refused with DEBUG off"
        return None

    def authenticate(self, webhook: WebhookRequest) -> Verified:
        auth = self.config.get("auth", {"type": "token"})
        kind = auth.get("type", "token")
        if kind == "token":
            return verify_webhook_token(webhook, self.slug)
        if kind == "header":
            secret = secret_value(auth.get("secret", ""))
            # An unset secret is reached only with webhooks open (webhook_refusal).
            if secret and not constant_time_equals(secret, webhook.headers.get(auth["header"])):
                raise WebhookForbidden(f"missing or wrong {auth['header']} header")
        # "none": open, which webhook_refusal allows for local development only.
        return Verified(VOUCHED_WHOLE_REQUEST)

    def parse_inbound(self, webhook: WebhookRequest, verified: Verified) -> InboundSMS:
        """Inbound SMS, fields named by `inbound`; the config's `docs` names the aggregator's page."""
        names = self.config.get("inbound", {})
        data = request_fields(webhook)
        body_fields = _names(names, "body")
        if not any(name in data for name in body_fields):
            raise MissingField(body_fields[0])
        return InboundSMS(
            sender=first_of(data, *_names(names, "from")),
            recipient=first_of(data, *_names(names, "to")),
            # An empty text is a message too (it gets the menu), but the field must be there.
            body=first_of(data, *body_fields, required=False),
            provider_message_id=first_of(data, *_names(names, "id"), required=False) or None,
            raw=data,
        )

    def parse_status(self, webhook: WebhookRequest, verified: Verified) -> list[StatusUpdate]:
        """One delivery report per request, fields named by `status`; the config's `docs` names its page."""
        names = self.config.get("status", {})
        data = request_fields(webhook)
        reference = status_reference(webhook, verified, first_of(data, *_names(names, "reference"), required=False))
        provider_status = first_of(data, *_names(names, "status"))
        id_names = _names(names, "id")
        if not id_names and not reference:
            # Receipts without a message id (Textlocal) are matched on our reference alone.
            raise MissingField((_names(names, "reference") or ("ref",))[0])
        return [
            StatusUpdate(
                status=self.map_status(provider_status),
                provider_status=provider_status,
                provider_message_id=first_of(data, *id_names, required=not reference) if id_names else "",
                reference=reference,
                error_code=first_of(data, *_names(names, "error_code"), required=False),
                error_message=first_of(data, *_names(names, "error_message"), required=False),
                raw=data,
            )
        ]

    def send(self, sms: OutboundSMS) -> SendResult:
        outbound = self._outbound(sms.options.get("outbound") or {}, str(sms.options.get("outbound_url") or ""))
        values = {
            "to": sms.to,
            "to_digits": sms.to.lstrip("+"),
            "from": sms.sender,
            "message": sms.body,
            "reference": sms.reference,
            "callback_url": sms.callback_url or "",
            "dlt_template_id": str(sms.options.get("dlt_template_id") or ""),
            "dlt_entity_id": str(sms.options.get("dlt_entity_id") or ""),
            **self._option_values(sms.options),
        }
        # The webhook token rides in the callback URL (deliver.callback_url): masked like the API secrets.
        secrets: list[str] = [webhook_token(self.slug)] if self._token_auth() else []
        url = render(outbound["url"], values, allow_env=True, secrets=secrets)
        params = render_params(outbound.get("params", {}), values, secrets)
        if encoding_of(sms.body) == UCS2:
            # Aggregators that do not detect Unicode themselves need to be told (Gupshup msg_type).
            params.update(render_params(outbound.get("unicode_params", {}), values, secrets))
        headers = {
            name: value
            for name, value in render_params(outbound.get("headers", {}), values, secrets).items()
            if value != ""
        }
        method = outbound.get("method", "POST").upper()
        # GET: params in the query; POST: params as the body, a form or JSON.
        body = {} if method == "GET" else {"json" if outbound.get("format", "form") == "json" else "data": params}
        reply = http_call(
            method,
            url,
            params=params if method == "GET" else None,
            headers=headers,
            timeout=settings.GATEWAY_TIMEOUT_SECONDS,
            # {env:...} values are no declared settings: masked as the secrets of this call.
            secrets=secrets,
            service=self.slug,
            **body,
        )
        provider_message_id = read_response(reply.text, outbound.get("response", {}), reply.exchange)
        return SendResult(provider_message_id=provider_message_id, exchanges=(reply.exchange,))

    def send_refusal(self) -> str | None:
        # Its credentials are the {env:NAME} variables its outbound request reads.
        missing = [
            name for name in ENV_PLACEHOLDER.findall(json.dumps(self.config["outbound"])) if not os.environ.get(name)
        ]
        if missing:
            return f"{', '.join(sorted(set(missing)))} not set: every send fails"
        return None

    def _declared_options(self) -> tuple[ProviderOption, ...]:
        options = []
        for spec in self.config.get("options", []):
            if not isinstance(spec, dict) or not SLUG.fullmatch(str(spec.get("name", ""))):
                raise AdapterConfigError(f"adapter {self.slug!r}: each option needs a lower-case name")
            if spec.get("kind", "text") not in ADAPTER_OPTION_KINDS:
                raise AdapterConfigError(
                    f"adapter {self.slug!r}: option {spec['name']!r} kind must be one of {sorted(ADAPTER_OPTION_KINDS)}"
                )
            fields = {**spec, "choices": tuple(tuple(choice) for choice in spec.get("choices", []))}
            try:
                options.append(ProviderOption(**{"label": spec["name"], **fields}))
            except (TypeError, AssertionError) as exc:
                raise AdapterConfigError(f"adapter {self.slug!r}: option {spec['name']!r}: {exc}") from None
        return tuple(options)

    def _option_values(self, options: dict[str, Any]) -> dict[str, str]:
        """{option:NAME} values: the shortcode's, else the declared default, else empty (left out)."""
        values = {}
        for option in self.OPTIONS[1:]:
            value = options.get(option.name, option.default)
            values[f"option:{option.name}"] = (
                "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            )
        return values

    def _token_auth(self) -> bool:
        return self.config.get("auth", {}).get("type", "token") == "token"

    def _outbound(self, overrides: dict[str, Any], outbound_url: str = "") -> dict[str, Any]:
        """The adapter's outbound config with a shortcode's overrides on top (see the module docstring)."""
        base = self.config["outbound"]
        if outbound_url:
            overrides = {**(overrides if isinstance(overrides, dict) else {}), "url": outbound_url}
        if not overrides:
            return base
        if not isinstance(overrides, dict):
            raise PermanentSendError("provider_config 'outbound' must be an object", code="bad_config")
        if "{env:" in json.dumps(overrides):
            raise PermanentSendError("provider_config may not read {env:...} secrets", code="bad_config")
        merged = {**base, **overrides, "allowed_hosts": base.get("allowed_hosts", [])}
        for key in ("params", "headers", "response"):
            if isinstance(overrides.get(key), dict):
                merged[key] = {**base.get(key, {}), **overrides[key]}
        if "url" in overrides:
            refusal = self._url_refusal(str(overrides["url"]))
            if refusal:
                raise PermanentSendError(f"provider_config url: {refusal}", code="bad_config")
        return merged

    def _url_refusal(self, url: str) -> str | None:
        # Same scheme and port too: an https API's credentials must not go out over plain http.
        base = self.config["outbound"]
        home = urlsplit(base["url"])
        allowed = [url_origin(base["url"]), *(f"{home.scheme}://{host}" for host in base.get("allowed_hosts", []))]
        return outbound_url_refusal(url, allowed)

    def config_errors(self, options: dict[str, Any]) -> list[str]:
        errors = literal_credential_errors(options)
        refusal = self._url_refusal(str(options["outbound_url"])) if options.get("outbound_url") else None
        if refusal:
            errors.append(f"outbound_url: {refusal}")
        try:
            self._outbound(options.get("outbound") or {})
        except PermanentSendError as exc:
            errors.append(str(exc))
        return errors

    def _validate(self) -> None:
        outbound = self.config.get("outbound")
        if not isinstance(outbound, dict) or not outbound.get("url"):
            raise AdapterConfigError(f"adapter {self.slug!r} needs outbound.url")
        response = outbound.get("response", {})
        if not (response.get("id_path") or response.get("id_regex")):
            raise AdapterConfigError(f"adapter {self.slug!r} needs outbound.response.id_path or id_regex")
        declared = {f"option:{spec.get('name')}" for spec in self.config.get("options", []) if isinstance(spec, dict)}
        for name in PLACEHOLDER.findall(
            json.dumps([outbound.get("url"), outbound.get("params"), outbound.get("headers")])
        ):
            if not name.startswith("env:") and name not in PLACEHOLDERS | declared:
                raise AdapterConfigError(f"adapter {self.slug!r}: unknown placeholder {{{name}}}")
        for key in ("from", "to", "body"):
            if not _names(self.config.get("inbound", {}), key):
                raise AdapterConfigError(f"adapter {self.slug!r} needs inbound.{key}")
        if not _names(self.config.get("status", {}), "status"):
            raise AdapterConfigError(f"adapter {self.slug!r} needs status.status")
        auth = self.config.get("auth", {})
        if auth.get("type", "token") not in ("token", "header", "none"):
            raise AdapterConfigError(f"adapter {self.slug!r}: auth.type must be token, header or none")
        if auth.get("type") == "header" and not (auth.get("header") and auth.get("secret")):
            raise AdapterConfigError(f"adapter {self.slug!r}: header auth needs auth.header and auth.secret")
        if outbound.get("method", "POST").upper() not in ("GET", "POST"):
            raise AdapterConfigError(f"adapter {self.slug!r}: outbound.method must be GET or POST")
        if outbound.get("format", "form") not in ("form", "json"):
            raise AdapterConfigError(f"adapter {self.slug!r}: outbound.format must be form or json")


def status_map_parse(slug: str, words: dict[str, Any]) -> dict[str, Status]:
    """A config's status map (provider word -> ours, as JSON strings), keyed lower-case, onto Status members."""
    mapped = {str(word).strip().lower(): str(ours) for word, ours in words.items()}
    unknown = set(mapped.values()) - OUR_STATUSES
    if unknown:
        raise AdapterConfigError(f"adapter {slug!r} maps onto unknown statuses {sorted(unknown)}")
    return {word: Status(ours) for word, ours in mapped.items()}


def load_adapters() -> dict[str, ConfigurableProvider]:
    """The shipped adapters (one JSON file each), then settings.SMS_ADAPTERS, which may replace one."""
    configs: dict[str, dict[str, Any]] = {
        path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(ADAPTERS_DIR.glob("*.json"))
    }
    configs.update(getattr(settings, "SMS_ADAPTERS", {}))
    return {slug: ConfigurableProvider(slug, config) for slug, config in configs.items()}


# Helpers (also used by delivery.providers.msg91) --------------------------------------


def request_fields(webhook: WebhookRequest) -> dict[str, Any]:
    """The webhook's fields from the query string and the body together; the body wins on a clash."""
    data = {name: value for name, value in webhook.query.items() if name not in OWN_QUERY_PARAMS}
    if webhook.method != "GET" and webhook.body.strip():
        data.update(request_data(webhook))
    if not data:
        raise WebhookBadRequest("empty request: no query parameters and no body")
    return data


def webhook_token(slug: str) -> str:
    return getattr(settings, f"{slug.upper()}_WEBHOOK_TOKEN", "")


def render(template: str, values: dict[str, str], *, allow_env: bool, secrets: list[str] | None = None) -> str:
    """Fill placeholders; {env:NAME} values are collected in `secrets` so the channel log never shows them."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("env:"):
            if not allow_env:
                raise PermanentSendError("{env:...} is not allowed here", code="bad_config")
            value = os.environ.get(name[4:], "")
            if not value:
                raise PermanentSendError(f"environment variable {name[4:]} is not set", code="not_configured")
            if secrets is not None:
                secrets.append(value)
            return value
        return values.get(name, match.group(0))

    return PLACEHOLDER.sub(fill, template)


def secret_value(template: str) -> str:
    """A webhook secret: `{env:NAME}` read now (empty when unset), or the literal value."""
    match = PLACEHOLDER.fullmatch(template or "")
    if match and match.group(1).startswith("env:"):
        return os.environ.get(match.group(1)[4:], "")
    return template or ""


def render_params(templates: dict[str, Any], values: dict[str, str], secrets: list[str]) -> dict[str, Any]:
    """Render a params or headers template (nested for JSON bodies); empty strings are left out."""
    rendered: dict[str, Any] = {}
    for name, template in templates.items():
        if isinstance(template, dict):
            rendered[name] = render_params(template, values, secrets)
        elif isinstance(template, str):
            value = render(template, values, allow_env=True, secrets=secrets)
            if value != "":
                rendered[name] = value
        else:
            rendered[name] = template
    return rendered


def read_response(text: str, spec: dict[str, Any], exchange: HttpExchange) -> str:
    """The provider message id from a 2xx answer; aggregators often answer 200 to a refusal."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if spec.get("success_path"):
        outcome = str(dig(data, spec["success_path"]) or "").lower()
        if outcome not in {str(value).lower() for value in spec.get("success_values", ["success"])}:
            reason = dig(data, spec.get("error_path", "")) or text[:200]
            code = str(dig(data, spec.get("error_code_path", "")) or "rejected")
            raise PermanentSendError(f"refused: {reason}", code=code, exchanges=(exchange,))
    provider_message_id = ""
    if spec.get("id_path"):
        provider_message_id = str(dig(data, spec["id_path"]) or "")
    elif spec.get("id_regex"):
        match = re.search(spec["id_regex"], text)
        provider_message_id = match.group(1) if match else ""
    if not provider_message_id:
        raise PermanentSendError(f"answered without a message id: {text[:200]}", code="no_id", exchanges=(exchange,))
    return provider_message_id


def dig(data: Any, path: str) -> Any:
    """`messages.0.id` -> data["messages"][0]["id"]; None when any step is missing."""
    if not path:
        return None
    for step in path.split("."):
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return None
    return data


def _names(section: dict[str, Any], key: str) -> tuple[str, ...]:
    value = section.get(key) or ()
    return (value,) if isinstance(value, str) else tuple(value)
