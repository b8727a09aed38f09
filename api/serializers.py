"""The send API's request and answer shapes: types and sizes here, meaning in api/sending.py."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.utils import html

from delivery.models import Message
from delivery.phones import InvalidPhoneNumber, to_e164
from delivery.statuses import OUTBOUND_STATUSES

TEXT_MAX_CHARS = 5000
VARIABLE_MAX_CHARS = 500
VARIABLES_MAX = 50
SCALAR = {"oneOf": [{"type": "string", "maxLength": VARIABLE_MAX_CHARS}, {"type": "number"}]}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": SCALAR, "maxItems": VARIABLES_MAX},
            {"type": "object", "additionalProperties": SCALAR, "maxProperties": VARIABLES_MAX},
        ],
        "description": "The template's values: a list in placeholder order, or an object keyed 1, '1' or 'var1'.",
    }
)
class VariablesField(serializers.JSONField):
    """A template's values: a list of strings or numbers, or an object of them keyed by position."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if isinstance(data, list):
            values, keys = data, [str(n) for n in range(1, len(data) + 1)]
        elif isinstance(data, dict):
            values, keys = list(data.values()), [str(key) for key in data]
        else:
            raise serializers.ValidationError("Give a list of values or an object keyed by position.")
        if len(values) > VARIABLES_MAX:
            raise serializers.ValidationError(f"At most {VARIABLES_MAX} values.")
        cleaned = []
        for key, value in zip(keys, values, strict=True):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise serializers.ValidationError(f"Value {key[:20]!r} must be a string or a number.")
            text = str(value)
            if len(text) > VARIABLE_MAX_CHARS or "\x00" in text or _has_surrogate(text) or len(key) > 20:
                raise serializers.ValidationError(f"Value {key[:20]!r} is not a usable value.")
            cleaned.append(text)
        return cleaned if isinstance(data, list) else dict(zip(keys, cleaned, strict=True))


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


class OneFormValue:
    """
    A field read from a form as from JSON: an empty value is an empty string (DRF would
    take it for an absent field, and `text=&message=hi` would send "hi"), and a field given
    twice is refused rather than its last value taken.
    """

    def get_value(self, dictionary):
        if html.is_html_input(dictionary):
            values = dictionary.getlist(self.field_name)
            if len(values) > 1:
                return values
            if values == [""]:
                return ""
        return super().get_value(dictionary)


class StrictCharField(OneFormValue, serializers.CharField):
    """A string, never a number or a boolean turned into one (DRF's CharField takes 0 as "0")."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "string", "maxLength": 32}, {"type": "integer", "minimum": 0}]})
class SeedPhoneField(OneFormValue, serializers.CharField):
    """The seed's `to`: a string, or the digits as a JSON number, as its clients sent them."""

    def to_internal_value(self, data):
        # A negative number is no phone number, written as a number or as a string.
        if isinstance(data, bool) or not isinstance(data, str | int) or str(data).lstrip().startswith("-"):
            self.fail("invalid")
        return super().to_internal_value(str(data))


class MessageSendSerializer(serializers.Serializer):
    to = StrictCharField(
        max_length=32, help_text="E.164 (+919876543210), or a national number of the shortcode's country."
    )
    shortcode = StrictCharField(max_length=15, help_text="A shortcode this client may send from.")
    text = StrictCharField(max_length=TEXT_MAX_CHARS, required=False, help_text="The text; or give `template` instead.")
    template = StrictCharField(
        max_length=200, required=False, help_text="DLT template ID or name of an approved template of the shortcode."
    )
    variables = VariablesField(required=False, help_text="Values for the template's placeholders.")
    callback_url = serializers.URLField(
        max_length=500, required=False, allow_blank=True, help_text="Each status change is POSTed here, signed."
    )
    reference = StrictCharField(
        max_length=100, required=False, allow_blank=True, help_text="Your own id for the message, echoed everywhere."
    )

    def validate(self, attrs):
        if bool(attrs.get("text")) == bool(attrs.get("template")):
            raise serializers.ValidationError("Give either `text` or `template`, not both or neither.")
        if "variables" in attrs and not attrs.get("template"):
            raise serializers.ValidationError({"variables": ["Variables go with a `template`."]})
        return attrs


class SeedSendSerializer(serializers.Serializer):
    """The services this one replaces took `{to, text}` (or `message`); the shortcode is the client's own."""

    to = SeedPhoneField(max_length=32)
    text = StrictCharField(max_length=TEXT_MAX_CHARS, required=False)
    message = StrictCharField(max_length=TEXT_MAX_CHARS, required=False)
    shortcode = StrictCharField(
        max_length=15, required=False, help_text="Needed only when the client may send from several shortcodes."
    )

    def validate(self, attrs):
        if not attrs.get("text") and not attrs.get("message"):
            raise serializers.ValidationError({"text": ["Give the text as `text` (or `message`)."]})
        return attrs


class MessageAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Our id: GET /api/v1/messages/{id}/.")
    status = serializers.CharField()
    encoding = serializers.CharField(help_text="gsm7 or ucs2")
    segments = serializers.IntegerField()
    reference = serializers.CharField()


class SeedAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.IntegerField(help_text="The same id, under the name the replaced services used.")
    status = serializers.CharField()


class MessageSerializer(serializers.ModelSerializer):
    to = serializers.CharField(source="phone")
    text = serializers.CharField(source="body")

    class Meta:
        model = Message
        fields = (
            "id",
            "status",
            "to",
            "shortcode",
            "text",
            "encoding",
            "segments",
            "reference",
            "callback_url",
            "error_code",
            "error_message",
            "dlt_template_id",
            "created_at",
            "updated_at",
            "sent_at",
            "delivered_at",
        )
        read_only_fields = fields


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.CharField()
    at = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=["smsgate", "report"], help_text="Ours, or a provider's delivery report.")
    provider_status = serializers.CharField(allow_blank=True)
    error_code = serializers.CharField(allow_blank=True)
    applied = serializers.BooleanField(help_text="Whether it moved the message's status.")


class MessageDetailSerializer(MessageSerializer):
    history = StatusChangeSerializer(many=True, read_only=True)

    class Meta(MessageSerializer.Meta):
        fields = (*MessageSerializer.Meta.fields, "history")
        read_only_fields = fields


class MessageFilterSerializer(serializers.Serializer):
    phone = serializers.CharField(max_length=32, required=False, help_text="E.164 or national (default region).")
    status = serializers.ChoiceField(choices=[str(status) for status in OUTBOUND_STATUSES], required=False)
    reference = serializers.CharField(max_length=100, required=False)
    batch = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    # Read by the paginator; checked here so that a malformed one is a 400, not ignored.
    cursor = serializers.CharField(max_length=500, required=False, help_text="From a page's `next` or `previous`.")
    page_size = serializers.IntegerField(
        min_value=1, max_value=200, required=False, help_text="Messages per page, 50 unless given."
    )

    def validate_phone(self, value):
        try:
            return to_e164(value, region=settings.SMS_DEFAULT_REGION)
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(str(exc)) from None


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable: invalid, suppressed, dlt_no_template, too_long ...")
    detail = serializers.CharField(help_text="A sentence saying why.")
    message_id = serializers.IntegerField(required=False, help_text="A stored, refused message.")
    nearest_template_id = serializers.CharField(required=False, allow_blank=True)


# "fields" is also the name of a Serializer's own property: declared after the class is made.
ErrorSerializer._declared_fields["fields"] = serializers.DictField(
    child=serializers.ListField(child=serializers.CharField()), required=False, help_text="Per field (400 invalid)."
)
