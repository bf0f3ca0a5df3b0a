#!/usr/bin/env python3
"""Structural checks of a rendered Achilles Helm chart (`helm template` output).

    helm template R helm/achilles [-f values...] | scripts/helm_render_check.py VALUES_JSON [--split DIR]

VALUES_JSON: the effective values (as `helm template --show-only`-independent
JSON: scripts/validate-helm.sh passes the merged scenario values). Checks what
the chart promises in docs/operations.md:
  - every Deployment: /healthz liveness and /readyz readiness probes, resources,
    non-root (uid 10001) and a read-only root filesystem, terminationGracePeriodSeconds
    longer than the drain deadline; the API has a preStop sleep;
  - consumers: replicas <= kafka.partitions, or (KEDA) no replicas field and a
    ScaledObject whose maxReplicaCount == kafka.partitions with a kafka trigger per group;
  - an HPA for the API when autoscaling is on; a PodDisruptionBudget per Deployment;
    a Service for the API and a metrics Service per consumer;
  - the migration Job is a pre-install/pre-upgrade hook running `achilles migrate`;
  - ServiceMonitors (when enabled) set the `service` label; dashboard ConfigMaps
    (when enabled) hold exactly deploy/grafana/dashboards/*.json.
With --split DIR, writes every document to DIR/NN-Kind-name.yaml (for
kubernetes-validate) and DIR/crds.json (the custom resources, for the CRD check)
and DIR/prometheusrule.yml (the rules, for promtool).
"""

from __future__ import annotations

import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSUMERS = {"raw-sink": "rawSink", "processor": "processor", "agent": "agent"}


def main():
    values = json.load(open(sys.argv[1]))
    split = sys.argv[sys.argv.index("--split") + 1] if "--split" in sys.argv else None
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    problems = []

    def fail(msg):
        problems.append(msg)

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def component(d):
        return d["metadata"].get("labels", {}).get("app.kubernetes.io/component")

    partitions = values["kafka"]["partitions"]
    deadline_ms = values["shutdownDeadlineMs"]
    keda = values["keda"]["enabled"]

    deployments = {component(d): d for d in by_kind.get("Deployment", [])}
    expected = ({"api"} if values["api"]["enabled"] else set()) | {
        c for c, k in CONSUMERS.items() if values[k]["enabled"]}
    if set(deployments) != expected:
        fail(f"Deployments for {sorted(deployments)}, expected {sorted(expected)}")

    for comp, d in deployments.items():
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace * 1000 <= deadline_ms:
            fail(f"{name}: terminationGracePeriodSeconds {grace} s is not longer than the {deadline_ms} ms drain deadline")
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot") or psc.get("runAsUser") != 10001:
            fail(f"{name}: pod must run as non-root uid 10001")
        if pod.get("automountServiceAccountToken") is not False:
            fail(f"{name}: automountServiceAccountToken should be false")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(f"{name}/{c['name']}: readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{name}/{c['name']}: allowPrivilegeEscalation must be false")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                fail(f"{name}/{c['name']}: liveness probe must GET /healthz")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                fail(f"{name}/{c['name']}: readiness probe must GET /readyz")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                fail(f"{name}/{c['name']}: resources need requests and limits")
            env = {e["name"]: e for e in c.get("env", [])}
            for key in ("DATABASE_URL", "ACHILLES_AUTH__KEYS", "ACHILLES_DEV_API_KEY"):
                if "secretKeyRef" not in env.get(key, {}).get("valueFrom", {}):
                    fail(f"{name}/{c['name']}: {key} must come from a Secret")
            if env.get("ACHILLES_CONFIG", {}).get("value") != "/etc/achilles/achilles.toml":
                fail(f"{name}/{c['name']}: ACHILLES_CONFIG must point at the ConfigMap's achilles.toml")
            if comp == "api":
                if "sleep" not in c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", []):
                    fail(f"{name}: the API needs a preStop hook (sleep)")
                if env.get("ACHILLES_API__LISTEN", {}).get("value", "").split(":")[0] != "0.0.0.0":
                    fail(f"{name}: the API must listen on 0.0.0.0")
            else:
                listen = [e for e in env if e.endswith("__METRICS_LISTEN")]
                if not listen or not env[listen[0]]["value"].startswith("0.0.0.0:"):
                    fail(f"{name}: the metrics listen address must be 0.0.0.0:PORT")
        if comp in CONSUMERS:
            if keda:
                if "replicas" in d["spec"]:
                    fail(f"{name}: with KEDA the Deployment must not set replicas (KEDA owns them)")
            elif d["spec"].get("replicas", 1) > partitions:
                fail(f"{name}: {d['spec']['replicas']} replicas > {partitions} partitions")
        if comp == "api" and values["api"]["autoscaling"]["enabled"] and "replicas" in d["spec"]:
            fail(f"{name}: with the HPA the Deployment must not set replicas")

    # Scaling objects
    hpas = {component(d): d for d in by_kind.get("HorizontalPodAutoscaler", [])}
    want_hpa = values["api"]["enabled"] and values["api"]["autoscaling"]["enabled"]
    if want_hpa:
        h = hpas.get("api")
        if not h:
            fail("no HorizontalPodAutoscaler for the API")
        elif h["spec"]["metrics"][0]["resource"]["name"] != "cpu":
            fail("the API's HPA must scale on CPU")
    elif "api" in hpas:
        fail("an HPA for the API although api.autoscaling.enabled is false")

    scaled = {component(d): d for d in by_kind.get("ScaledObject", [])}
    if keda:
        for comp in expected & set(CONSUMERS):
            so = scaled.get(comp)
            if not so:
                fail(f"no ScaledObject for {comp}")
                continue
            if so["spec"]["maxReplicaCount"] != partitions:
                fail(f"ScaledObject {comp}: maxReplicaCount {so['spec']['maxReplicaCount']} != kafka.partitions {partitions}")
            if so["spec"].get("minReplicaCount", 0) < 1:
                fail(f"ScaledObject {comp}: minReplicaCount must be at least 1")
            triggers = so["spec"]["triggers"]
            if not triggers or any(t["type"] != "kafka" for t in triggers):
                fail(f"ScaledObject {comp}: needs kafka triggers")
            want = 2 if comp == "raw-sink" else 1
            if len(triggers) != want:
                fail(f"ScaledObject {comp}: {len(triggers)} triggers, expected {want} (one per consumer group)")
            for t in triggers:
                md = t["metadata"]
                if not md.get("topic", "").startswith(values["kafka"]["topicPrefix"]):
                    fail(f"ScaledObject {comp}: topic {md.get('topic')} lacks the prefix")
                if md.get("allowIdleConsumers") != "false":
                    fail(f"ScaledObject {comp}: allowIdleConsumers must be \"false\"")
    elif scaled:
        fail("ScaledObjects rendered although keda.enabled is false")

    # Disruption budgets, services
    pdbs = {component(d) for d in by_kind.get("PodDisruptionBudget", [])}
    for comp in expected:
        key = "api" if comp == "api" else CONSUMERS[comp]
        if values[key]["pdb"]["enabled"] and comp not in pdbs:
            fail(f"no PodDisruptionBudget for {comp}")
    services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
    for comp in expected:
        ports = [p["name"] for s in services.values() if component(s) == comp for p in s["spec"]["ports"]]
        want = "http" if comp == "api" else "metrics"
        if want not in ports:
            fail(f"no Service with a '{want}' port for {comp}")

    # Migration hook
    jobs = [d for d in by_kind.get("Job", []) if component(d) == "migrate"]
    if values["migration"]["enabled"]:
        if len(jobs) != 1:
            fail("expected one migration Job")
        else:
            j = jobs[0]
            hooks = set(j["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
            if hooks != {"pre-install", "pre-upgrade"}:
                fail(f"migration Job hooks {sorted(hooks)}, expected pre-install,pre-upgrade")
            if j["spec"]["template"]["spec"]["containers"][0]["command"] != ["achilles", "migrate"]:
                fail("the migration Job must run `achilles migrate`")

    # Secret / ConfigMap
    secrets = [d for d in by_kind.get("Secret", []) if component(d) == "config"]
    if values["secrets"]["existingSecret"]:
        if secrets:
            fail("a Secret was rendered although secrets.existingSecret is set")
    elif len(secrets) != 1:
        fail("expected the chart's Secret")
    cms = [d for d in by_kind.get("ConfigMap", []) if component(d) == "config"]
    if len(cms) != 1 or "achilles.toml" not in cms[0].get("data", {}):
        fail("expected the ConfigMap with achilles.toml")
    else:
        toml = cms[0]["data"]["achilles.toml"]
        if f"partitions = {partitions}\n" not in toml:
            fail("achilles.toml does not carry kafka.partitions as an integer")

    # Monitoring
    monitors = by_kind.get("ServiceMonitor", [])
    if values["serviceMonitor"]["enabled"]:
        got = {component(m) for m in monitors}
        if got != expected:
            fail(f"ServiceMonitors for {sorted(got)}, expected {sorted(expected)}")
        for m in monitors:
            rl = m["spec"]["endpoints"][0].get("relabelings", [])
            if not any(r.get("targetLabel") == "service" and r.get("replacement") == component(m) for r in rl):
                fail(f"ServiceMonitor {m['metadata']['name']}: must set label service={component(m)}")
    elif monitors:
        fail("ServiceMonitors rendered although serviceMonitor.enabled is false")

    rules = by_kind.get("PrometheusRule", [])
    if values["prometheusRule"]["enabled"] != bool(rules):
        fail("PrometheusRule rendered iff prometheusRule.enabled")

    dash = [d for d in by_kind.get("ConfigMap", []) if component(d) == "dashboards"]
    if values["dashboards"]["enabled"]:
        src = os.path.join(ROOT, "deploy", "grafana", "dashboards")
        want = {f: json.load(open(os.path.join(src, f))) for f in os.listdir(src) if f.endswith(".json")}
        got = {}
        for cm in dash:
            for k, v in cm["data"].items():
                got[k] = json.loads(v)
            for k, v in values["dashboards"]["labels"].items():
                if cm["metadata"]["labels"].get(k) != v:
                    fail(f"dashboard ConfigMap {cm['metadata']['name']}: label {k}={v} missing")
        if got != want:
            fail(f"dashboard ConfigMaps hold {sorted(got)}, deploy/grafana/dashboards has {sorted(want)} (or contents differ)")
    elif dash:
        fail("dashboard ConfigMaps rendered although dashboards.enabled is false")

    if split:
        os.makedirs(split, exist_ok=True)
        crds = []
        for n, d in enumerate(docs):
            if "/" in d["apiVersion"] and d["apiVersion"].split("/")[0].endswith((".sh", ".com")):
                crds.append(d)
            else:
                with open(os.path.join(split, f"{n:02d}-{d['kind']}-{d['metadata']['name']}.yaml"), "w") as f:
                    yaml.safe_dump(d, f)
        with open(os.path.join(split, "crds.json"), "w") as f:
            json.dump(crds, f)
        for r in rules:
            with open(os.path.join(split, "prometheusrule.yml"), "w") as f:
                yaml.safe_dump(r["spec"], f)

    if problems:
        print("\n".join("  " + p for p in problems), file=sys.stderr)
        return 1
    kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
    print(f"  structure ok: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
