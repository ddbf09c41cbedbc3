"""The build and deployment files, checked by the tools their users run:
hadolint for the Dockerfiles, the Kubernetes schema for the manifests, and
the published schemas for the GitHub workflow and the Renovate config."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from moscow_clock import create_app
from moscow_clock.core.clockstate import Check, Health
from moscow_clock.core.config import Settings
from moscow_clock.core.selection import Verdict

from .conftest import SYNCED
from .support.server import ROOT
from .support.timing import scaled

BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
RESOURCES = [path for path in MANIFESTS if path.name != "kustomization.yaml"]


def tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=scaled(120), check=False
    )


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.distroless"])
def test_hadolint_is_clean(dockerfile: str) -> None:
    result = tool(BIN / "hadolint", ROOT / dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python app.py\n")
    assert tool(BIN / "hadolint", bad).returncode != 0


def test_manifests_are_valid_for_current_kubernetes() -> None:
    result = tool(BIN / "kubernetes-validate", "--strict", *RESOURCES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(RESOURCES)


def test_the_validator_would_catch_a_typo(tmp_path: Path) -> None:
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    assert tool(BIN / "kubernetes-validate", "--strict", broken).returncode != 0


def test_deployment_drains_websockets_before_the_pod_goes() -> None:
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["GRACEFUL_TIMEOUT"]) + 1
    assert pre_stop + drain < pod["terminationGracePeriodSeconds"]
    assert deployment["spec"]["replicas"] == 3
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # Readiness follows the clock's health; liveness and start-up do not.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= container["resources"].keys()


def test_metrics_are_scraped_from_their_own_port_which_the_service_hides() -> None:
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    annotations = template["metadata"]["annotations"]
    assert int(env["METRICS_PORT"]) == ports["metrics"] != ports["http"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"
    service = yaml.safe_load((ROOT / "deploy/kubernetes/service.yaml").read_text())
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    assert env["PUBLIC_ORIGINS"].startswith("https://")


def test_compose_keeps_metrics_off_the_public_port() -> None:
    service = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())["services"]["clock"]
    metrics_port = service["environment"]["METRICS_PORT"]
    published = [str(port) for port in service["ports"]]
    assert f"127.0.0.1:{metrics_port}:{metrics_port}" in published
    assert not any(port.endswith(f":{metrics_port}") and port.count(":") < 2 for port in published)
    assert service["environment"]["PUBLIC_ORIGINS"]


def test_compose_file_hardens_the_container() -> None:
    service = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())["services"]["clock"]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "moscow_clock.healthcheck"]


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-workflows", ".github/workflows/ci.yml"),
        ("vendor.renovate", "renovate.json"),
    ],
)
def test_hosting_config_matches_its_schema(schema: str, path: str) -> None:
    result = tool(BIN / "check-jsonschema", "--builtin-schema", schema, ROOT / path)
    assert result.returncode == 0, result.stdout + result.stderr


RULES = ROOT / "deploy" / "kubernetes" / "monitoring" / "prometheusrule.yaml"
DURATION = re.compile(r"^\d+[smhd]$")


def _metric_families() -> set[str]:
    """Every metric family the app exports (# TYPE lines), NTP servers configured."""
    app = create_app(
        settings=Settings(ntp_servers=(("127.0.0.1", 9),)), clock_source=lambda: SYNCED
    )

    async def scrape() -> str:
        response = await app.test_client().get("/metrics")
        return await response.get_data(as_text=True)

    text = asyncio.run(scrape())
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def rule_problems(rule: dict[str, Any], exported: set[str]) -> list[str]:
    """What is wrong with a PrometheusRule: its shape (the Prometheus
    Operator's CRD: groups of rules with alert, expr, for, labels,
    annotations), kube-prometheus' style (a `for:` on every alert, a
    severity, a summary and a description), and any metric or label value
    it names that the app does not export."""
    problems = []
    if (rule.get("apiVersion"), rule.get("kind")) != ("monitoring.coreos.com/v1", "PrometheusRule"):
        problems.append("not a monitoring.coreos.com/v1 PrometheusRule")
    if set(rule) != {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"unexpected top-level keys {sorted(rule)}")
    label_values = {"health": {h.value for h in Health}, "state": {v.value for v in Verdict}}
    for group in rule.get("spec", {}).get("groups", []):
        if set(group) != {"name", "rules"}:
            problems.append(f"group keys {sorted(group)}")
        for item in group.get("rules", []):
            name = item.get("alert", "?")
            if set(item) != {"alert", "expr", "for", "labels", "annotations"}:
                problems.append(f"{name}: keys {sorted(item)}")
            if not DURATION.match(str(item.get("for", ""))):
                problems.append(f"{name}: no valid for:")
            if item.get("labels", {}).get("severity") not in {"info", "warning", "critical"}:
                problems.append(f"{name}: severity")
            if set(item.get("annotations", {})) != {"summary", "description"}:
                problems.append(f"{name}: annotations")
            expr = str(item.get("expr", ""))
            if expr.count("(") != expr.count(")") or expr.count("[") != expr.count("]"):
                problems.append(f"{name}: unbalanced expression")
            names = set(re.findall(r"\bmoscow_clock_[a-z_]+", expr))
            if not names or not names <= exported:
                problems.append(f"{name}: unknown metrics {sorted(names - exported)}")
            for label, value in re.findall(r'(\w+)="([^"]*)"', expr):
                if value not in label_values.get(label, set()):
                    problems.append(f"{name}: {label}={value!r} never exported")
    return problems


def test_clock_alerts_are_a_valid_prometheus_rule_on_metrics_we_export() -> None:
    rule = yaml.safe_load(RULES.read_text())
    exported = _metric_families()
    assert rule_problems(rule, exported) == []
    kustomization = yaml.safe_load((RULES.parent / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [RULES.name]
    alerts = {item["alert"] for group in rule["spec"]["groups"] for item in group["rules"]}
    assert {
        "MoscowClockNotSynchronising",
        "MoscowClockSkewDetected",
        "MoscowClockNtpNoMajority",
        "MoscowClockNtpReferenceStale",
    } <= alerts


def test_the_rule_check_would_catch_a_mistake() -> None:
    exported = _metric_families()
    for mangle in (
        lambda r: r["spec"]["groups"][0]["rules"][0].pop("for"),
        lambda r: r["spec"]["groups"][0]["rules"][1].update(expr="moscow_clock_clok_health == 1"),
        lambda r: r["spec"]["groups"][0]["rules"][1].update(
            expr='moscow_clock_clock_health{health="of"} == 1'
        ),
        lambda r: r["spec"]["groups"][0]["rules"][2]["labels"].pop("severity"),
        lambda r: r.update(kind="PrometheusRules"),
    ):
        rule = yaml.safe_load(RULES.read_text())
        mangle(rule)
        assert rule_problems(rule, exported) != []


def test_the_deployment_does_not_gate_readiness_on_the_clock() -> None:
    """Every replica shares the node's clock and the NTP servers: readiness on
    the clock would empty the Service (issue 19). The clock is alerted on."""
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert Settings.from_env(env).clock_check is Check.OFF
