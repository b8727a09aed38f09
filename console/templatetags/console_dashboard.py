"""The admin index's dashboard, as a tag: the index view is Django's own, this adds the figures."""

from django import template
from django.urls import reverse
from django.utils import timezone

from console.charts import column_chart_svg, hourly_columns
from console.conversation import VIEW_PERMISSION as CONVERSATION_PERMISSION
from console.dashboard import WINDOWS, dashboard_figures, dashboard_window
from console.send import SEND_PERMISSION
from console.simulator import SIMULATOR_PERMISSION

register = template.Library()

# Who sees the dashboard: it counts every message, so it needs the right to read them.
DASHBOARD_PERMISSION = "delivery.view_message"

# The console's pages linked from the dashboard, each for those its page lets in.
CONSOLE_LINKS = (
    ("console:send", "Send a message", SEND_PERMISSION),
    ("console:simulator", "Simulator", SIMULATOR_PERMISSION),
    ("console:conversation", "Conversation by phone", CONVERSATION_PERMISSION),
)


def _console_links(user) -> list[tuple[str, str]]:
    links = []
    for name, label, permission in CONSOLE_LINKS:
        if user.has_perm(permission):
            links.append((reverse(name), label))
    return links


@register.inclusion_tag("console/dashboard.html", takes_context=True)
def console_dashboard(context):
    request = context["request"]
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        return {"shown": False}
    window = dashboard_window(request.GET.get("window"))
    figures = dashboard_figures(now=timezone.now(), window=window)
    chart = column_chart_svg(
        hourly_columns(figures.hours, window=window),
        title=f"Inbound and outbound messages per hour, last {window}",
    )
    return {
        "shown": True,
        "figures": figures,
        "chart": chart,
        "windows": list(WINDOWS),
        "links": _console_links(request.user),
    }
