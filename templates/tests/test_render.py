"""template_render: values in, text out; refused values say why."""

import pytest

from templates.models import Template
from templates.services import TemplateRenderError, template_render, template_resolve
from templates.tests.factories import TemplateFactory

CONTENT = "Hi {#var#}, pay Rs {#numeric#} at {#url#} or call {#cbn#}."


@pytest.fixture
def bill(db):
    return TemplateFactory(dlt_template_id="1107161000000000777", content=CONTENT)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values",
    [
        ["Ram", "120", "https://acme.in/pay", "18001234567"],
        {1: "Ram", "2": "120", "var3": "https://acme.in/pay", "VAR4": "18001234567"},
    ],
)
def test_render_fills_the_placeholders_and_the_result_matches(bill, values):
    # when
    text = template_render(dlt_template_id=bill.dlt_template_id, values=values)

    # then
    assert text == "Hi Ram, pay Rs 120 at https://acme.in/pay or call 18001234567."
    header = bill.headers.get().sender_id
    assert template_resolve(header=header, text=text).template_id == bill.dlt_template_id


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values,message",
    [
        (["R" * 31, "120", "https://acme.in/pay", "18001234567"], "value 1: {#var#} takes at most 30 characters"),
        (["Ram", "12O", "https://acme.in/pay", "18001234567"], "value 2: {#numeric#} takes digits 0-9 only"),
        (["Ram", "120", "acme.in/pay", "18001234567"], "value 3: {#url#} takes an http:// or https:// link"),
        (["Ram", "120", "https://acme.in/pay", "call me"], "value 4: {#cbn#} takes a phone number"),
        (["Ram", "", "https://acme.in/pay", "18001234567"], "value 2: {#numeric#} needs a value"),
        (["Ram", "120"], "4 placeholder(s); 2 value(s) were given"),
        ({1: "Ram", 2: "120", 3: "https://acme.in/pay"}, "No value for position(s) 4"),
        ({"name": "Ram"}, "Unknown value key 'name'"),
    ],
)
def test_render_refuses_values_that_do_not_fit(bill, values, message):
    # when / then
    with pytest.raises(TemplateRenderError) as caught:
        template_render(dlt_template_id=bill.dlt_template_id, values=values)
    assert message in caught.value.messages[0]


@pytest.mark.django_db
def test_render_refuses_unknown_and_inactive_templates(bill):
    # given
    Template.objects.filter(pk=bill.pk).update(status=Template.Status.INACTIVE)

    # when / then
    with pytest.raises(TemplateRenderError, match="inactive"):
        template_render(dlt_template_id=bill.dlt_template_id, values=["a", "1", "https://a.in", "18001234567"])
    with pytest.raises(TemplateRenderError, match="No template with DLT ID 1107169999999999999"):
        template_render(dlt_template_id="1107169999999999999", values=[])
