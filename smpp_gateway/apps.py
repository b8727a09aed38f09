from django.apps import AppConfig


class SmppGatewayConfig(AppConfig):
    """SMPP binds: one long-lived transceiver per shortcode, run by `smpp_worker`."""

    name = "smpp_gateway"
    verbose_name = "SMPP"
