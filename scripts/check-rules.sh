#!/usr/bin/env bash
# scripts/check-rules.sh: check the Prometheus side of deploy/ (part of make test).
#
# 1. promtool check config  deploy/prometheus/prometheus.yml and prometheus.local.yml
# 2. promtool check rules   deploy/prometheus/rules/*.yml
# 3. promtool test rules    deploy/prometheus/tests/*.test.yml
# 4. coverage: every alert has a test where it fires and one where it does not,
#    carries a severity label, summary/description annotations and a runbook_url
#    whose anchor is a heading of docs/operations.md.
# 5. the Helm chart's copy of the rules (helm/achilles/rules/) is identical.
#
# promtool comes from Debian's prometheus package (scripts/ensure-prometheus.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/ensure-prometheus.sh"

info "promtool check config deploy/prometheus/prometheus{,.local}.yml"
# prometheus.yml's rule_files point into the container (/etc/prometheus/rules):
# check its syntax only; the rules themselves are checked below.
promtool check config --syntax-only deploy/prometheus/prometheus.yml
promtool check config deploy/prometheus/prometheus.local.yml >/dev/null

info "promtool check rules deploy/prometheus/rules/*.yml"
promtool check rules deploy/prometheus/rules/*.yml

info "promtool test rules deploy/prometheus/tests/*.test.yml"
promtool test rules deploy/prometheus/tests/*.test.yml

info "alert coverage, labels, annotations and runbook anchors"
python3 - deploy/prometheus/rules deploy/prometheus/tests docs/operations.md <<'PY'
import glob, os, re, sys
import yaml

rules_dir, tests_dir, runbook = sys.argv[1:4]
alerts = {}
for path in sorted(glob.glob(os.path.join(rules_dir, "*.yml"))):
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                alerts[rule["alert"]] = rule

fires, quiet = set(), set()
for path in sorted(glob.glob(os.path.join(tests_dir, "*.test.yml"))):
    for test in yaml.safe_load(open(path)).get("tests", []):
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])

def slug(heading):
    # GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'.
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")

anchors = set()
if os.path.exists(runbook):
    for line in open(runbook, encoding="utf-8"):
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            anchors.add(slug(m.group(1)))

problems = []
for name, rule in sorted(alerts.items()):
    if name not in fires:
        problems.append(f"{name}: no test where it fires")
    if name not in quiet:
        problems.append(f"{name}: no test where it stays quiet")
    if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
        problems.append(f"{name}: severity label must be critical, warning or info")
    ann = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if not ann.get(key):
            problems.append(f"{name}: annotation {key} is missing")
    url = ann.get("runbook_url", "")
    want = "docs/operations.md#" + name.lower()
    if url != want:
        problems.append(f"{name}: runbook_url should be {want}, is {url!r}")
    elif name.lower() not in anchors:
        problems.append(f"{name}: {runbook} has no heading '{name}' for the runbook anchor")
for name in sorted((fires | quiet) - set(alerts)):
    problems.append(f"tests mention {name}, which no rule defines")
if problems:
    print("\n".join("  " + p for p in problems), file=sys.stderr)
    sys.exit(1)
print(f"  {len(alerts)} alerts: each fires and stays quiet in a test, has a severity, "
      "annotations and a runbook section")
PY

chart_rules="$ROOT/helm/achilles/rules"
if [[ -d $chart_rules ]]; then
  diff -r deploy/prometheus/rules "$chart_rules" >/dev/null ||
    die "helm/achilles/rules/ differs from deploy/prometheus/rules/: run scripts/sync-helm-dashboards.sh"
fi
info "Prometheus rules and configs are valid"
