"""
deploy/: the Prometheus scrape config and alert rules, the Grafana provisioning and
dashboard, and docker compose's `monitoring` profile that runs them. Each file parses,
every metric an alert or panel reads is one /metrics exposes under the agreed names, and
every path the services are told to read is a file of this repository.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana/dashboards/smsgate.json"
ALERTS = DEPLOY / "prometheus/alerts.yml"
METRICS_TOKEN = "scrape-token-for-tests"

# The metric names agreed for smsgate, as Prometheus sees them.
SHARED = {
    "smsgate_inbound_total",
    "smsgate_inbound_handled_total",
    "smsgate_handler_duration_seconds",
    "smsgate_sends_total",
    "smsgate_provider_request_duration_seconds",
    "smsgate_provider_errors_total",
    "smsgate_delivery_reports_total",
    "smsgate_webhook_refusals_total",
    "smsgate_refusals_total",
    "smsgate_rate_limited_total",
    "smsgate_suppressions_total",
    "smsgate_pending_messages",
    "smsgate_oldest_pending_age_seconds",
    "smsgate_broker_queue_depth",
    "smsgate_active_sessions",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# PromQL words that are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "and", "or", "unless", "bool",
}  # fmt: skip


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\boffset\s+\w+", "", expr)
    return set(re.findall(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr)) - PROMQL_WORDS


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def without_series_suffix(name: str) -> str:
    for suffix in HISTOGRAM_SERIES:
        if name.endswith(suffix) and name.removesuffix(suffix) in SHARED:
            return name.removesuffix(suffix)
    return name


@pytest.mark.parametrize("path", sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".json")))
def test_every_deploy_file_parses(path):
    loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict) and loaded


def test_promql_metrics_finds_the_names_and_nothing_else():
    expr = (
        'sum by (shortcode) (increase(smsgate_inbound_total{shortcode!="other"}[1h] offset 1w)) > 50 and '
        "histogram_quantile(0.95, sum by (le) (rate(django_http_requests_latency_seconds_by_view_method_bucket[5m])))"
    )
    assert promql_metrics(expr) == {
        "smsgate_inbound_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
    }


@pytest.mark.django_db
def test_every_metric_the_alerts_and_the_dashboard_read_is_one_metrics_exposes(client, settings):
    # given: what /metrics exposes (after one request, so django-prometheus has counted one)
    settings.METRICS_TOKEN = METRICS_TOKEN
    assert client.get("/health/live").status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    exposed = {"up"}  # Prometheus's own, per target
    if not settings.REDIS_URL:
        # Counted only where the cache can list its keys (Redis); local memory cannot.
        exposed.add("smsgate_active_sessions")
    for family in text_string_to_metric_families(response.content.decode()):
        suffixes = {"counter": ("_total",), "histogram": HISTOGRAM_SERIES}.get(family.type, ("",))
        exposed |= {family.name + suffix for suffix in suffixes}
        exposed |= {sample.name for sample in family.samples}
    # when
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    used = {name for expr in exprs for name in promql_metrics(expr)}
    # then: all of it is exposed, and ours are the agreed names
    assert used - exposed == set()
    ours = {without_series_suffix(name) for name in used if name.startswith("smsgate_")}
    assert ours - SHARED == set()


def test_the_dashboard_shows_every_agreed_metric():
    shown = {without_series_suffix(name) for expr in dashboard_exprs() for name in promql_metrics(expr)}
    assert SHARED - shown == set()


def test_the_dashboard_panels_read_the_provisioned_datasource_and_fit_the_grid():
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == uid, panel["title"]


@pytest.mark.parametrize(
    "alert,reads,threshold",
    [
        ("SmsgateProviderFailing", {"smsgate_delivery_reports_total", "smsgate_sends_total"}, "> 0.2"),
        ("SmsgateShortcodeSilent", {"smsgate_inbound_total"}, "offset 1w"),
        ("SmsgateQueueBackingUp", {"smsgate_oldest_pending_age_seconds"}, "> 60"),
    ],
)
def test_the_alert_rules_watch_providers_shortcodes_and_the_queue(alert, reads, threshold):
    rule = {rule["alert"]: rule for rule in alert_rules() if "alert" in rule}[alert]
    assert promql_metrics(rule["expr"]) == reads
    assert threshold in rule["expr"]
    assert rule["labels"]["severity"] and rule["annotations"]["summary"] and rule["for"]


def _mounts(service: dict) -> dict[str, Path]:
    """Container path -> repository path, for the service's bind mounts of this repository."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def _in_repo(mounts: dict[str, Path], container_path: str) -> Path | None:
    for target, source in mounts.items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path.removeprefix(target).lstrip("/")
    return None


def test_compose_runs_prometheus_and_grafana_under_the_monitoring_profile_only():
    services = compose()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    # plain `docker compose up` starts what it started before
    assert {name for name, service in services.items() if "profiles" not in service} == {
        "web",
        "dispatcher",
        "worker",
        "worker-replies",
        "worker-bulk",
        "worker-retries",
        "beat",
        "postgres",
        "redis",
        "rabbitmq",
    }


def test_every_file_the_monitoring_services_are_told_to_read_is_in_deploy():
    services = compose()["services"]
    prometheus_mounts, grafana_mounts = _mounts(services["prometheus"]), _mounts(services["grafana"])
    assert all(path.exists() for path in [*prometheus_mounts.values(), *grafana_mounts.values()])
    # Prometheus: its config, and the rules file the config names
    command = " ".join(services["prometheus"]["command"])
    config_path = re.search(r"--config\.file=(\S+)", command).group(1)
    config = yaml.safe_load(_in_repo(prometheus_mounts, config_path).read_text())
    assert [_in_repo(prometheus_mounts, path) for path in config["rule_files"]] == [ALERTS]
    assert config["scrape_configs"][0]["metrics_path"] == "/metrics"
    assert "web:8000" in config["scrape_configs"][0]["static_configs"][0]["targets"]
    # Grafana: its provisioning, and the folder of dashboards it names
    providers = yaml.safe_load(_in_repo(grafana_mounts, "/etc/grafana/provisioning/dashboards/smsgate.yml").read_text())
    assert _in_repo(grafana_mounts, providers["providers"][0]["options"]["path"]) == DASHBOARD.parent
    datasources = _in_repo(grafana_mounts, "/etc/grafana/provisioning/datasources/prometheus.yml")
    assert yaml.safe_load(datasources.read_text())["datasources"][0]["url"] == "http://prometheus:9090"
