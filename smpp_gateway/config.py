"""A shortcode's bind settings, read from its provider options and the environment."""

from dataclasses import dataclass

from commands.models import Shortcode
from delivery.providers import get_provider
from delivery.providers.smpp import (
    DEFAULT_ENQUIRE_LINK_SECONDS,
    DEFAULT_PASSWORD_ENV,
    DEFAULT_PE_ID_TLV,
    DEFAULT_PORT,
    DEFAULT_TEMPLATE_ID_TLV,
    DEFAULT_WINDOW,
    tlv_tag,
)
from delivery.redaction import env_secret

PROVIDER = "smpp"


class BindConfigError(Exception):
    """The shortcode cannot hold a bind: unknown, not an smpp shortcode, or options that do not check."""


@dataclass(frozen=True)
class BindConfig:
    shortcode: str
    host: str
    port: int
    system_id: str
    password: str
    system_type: str
    bind_ton: int
    bind_npi: int
    source_ton: int
    source_npi: int
    dest_ton: int
    dest_npi: int
    pe_id_tlv: int
    template_id_tlv: int
    window: int
    enquire_link_seconds: int
    mps: float  # segments per second


def bind_config_get(shortcode: str) -> BindConfig:
    """
    The bind settings of `shortcode`, as staff saved them; the password read from the
    environment variable the options name (declared a secret as it is read, so it is masked
    wherever text is logged). Raises BindConfigError saying what is wrong.
    """
    row = Shortcode.objects.filter(number=shortcode).first()
    if row is None:
        raise BindConfigError(f"no shortcode {shortcode}")
    if row.provider != PROVIDER:
        raise BindConfigError(f"shortcode {shortcode} sends through {row.provider!r}, not {PROVIDER!r}")
    options = dict(row.provider_config or {})
    errors = get_provider(PROVIDER).options_errors(options)
    if errors:
        raise BindConfigError(f"shortcode {shortcode}: {'; '.join(errors)}")
    password_env = str(options.get("password_env") or DEFAULT_PASSWORD_ENV)
    password = env_secret(password_env)
    if not password:
        raise BindConfigError(f"{password_env} is not set: the bind for {shortcode} needs its password")

    def number(name: str, default: int) -> int:
        value = options.get(name)
        return default if value in (None, "") else int(value)

    return BindConfig(
        shortcode=shortcode,
        host=str(options["host"]).strip(),
        port=number("port", DEFAULT_PORT),
        system_id=str(options["system_id"]).strip(),
        password=password,
        system_type=str(options.get("system_type") or ""),
        bind_ton=number("bind_ton", 0),
        bind_npi=number("bind_npi", 0),
        source_ton=number("source_ton", 3),
        source_npi=number("source_npi", 0),
        dest_ton=number("dest_ton", 1),
        dest_npi=number("dest_npi", 1),
        pe_id_tlv=tlv_tag(options.get("pe_id_tlv") or DEFAULT_PE_ID_TLV),
        template_id_tlv=tlv_tag(options.get("template_id_tlv") or DEFAULT_TEMPLATE_ID_TLV),
        window=number("window", DEFAULT_WINDOW),
        enquire_link_seconds=number("enquire_link_seconds", DEFAULT_ENQUIRE_LINK_SECONDS),
        mps=float(number("mps", row.max_mps)),
    )
