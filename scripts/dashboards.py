#!/usr/bin/env python3
"""Achilles Grafana dashboards: generate, lint and check them against Prometheus.

    scripts/dashboards.py generate [--check]       write deploy/grafana/dashboards/*.json
                                                   (--check: fail if they differ instead)
    scripts/dashboards.py lint                     offline checks (see lint())
    scripts/dashboards.py exprs [NAME...]          print every panel query, variables substituted
    scripts/dashboards.py rules-file [NAME...]     every panel query as a rules file, so that
                                                   `promtool check rules` parses them offline
    scripts/dashboards.py check --prometheus URL [--database-url URL] [NAME...]
                                                   evaluate every panel query through
                                                   /api/v1/query (and every SQL panel with
                                                   psql); fail on panels without data

The dashboards are defined in this file (DASHBOARDS below) and written as JSON,
so the seven of them share one layout, one datasource variable and one set of
PromQL idioms; edit here and run `generate`. `lint` (part of make test) fails
when the JSON files are stale. NAME is a file name without .json (overview,
api, raw-sink, processor, agent, domain, spend). Analytical panels (tables of
clusters and the agent leaderboard) query Postgres through a second datasource
variable, `postgres`, and read only the views and functions the migrations
define (lint checks the names). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "deploy", "grafana", "dashboards")
HELM_DIR = os.path.join(ROOT, "helm", "achilles", "dashboards")
METRICS_RS = os.path.join(ROOT, "shared", "core", "src", "metrics.rs")

DS = {"type": "prometheus", "uid": "${datasource}"}
PG = {"type": "grafana-postgresql-datasource", "uid": "${postgres}"}
MIGRATIONS = os.path.join(ROOT, "migrations")
# Routes that are probes or scrapes, not traffic.
NOT_TRAFFIC = 'route!~"/healthz|/readyz|/metrics"'
RI = "$__rate_interval"


# --------------------------------------------------------------------------
# Panel builders
# --------------------------------------------------------------------------
class T:
    """One query of a panel."""

    def __init__(self, expr: str, legend: str = "", instant: bool = False):
        self.expr = " ".join(expr.split())
        self.legend = legend
        self.instant = instant


def _targets(targets):
    out = []
    for i, t in enumerate(targets):
        if isinstance(t, str):
            t = T(t)
        elif isinstance(t, tuple):
            t = T(*t)
        out.append({
            "datasource": DS,
            "refId": chr(ord("A") + i),
            "expr": t.expr,
            "legendFormat": t.legend or "__auto",
            "range": not t.instant,
            "instant": t.instant,
            "editorMode": "code",
        })
    return out


def _thresholds(steps):
    # steps: [(value or None, color)]
    return {"mode": "absolute",
            "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = [(None, "green")]


def timeseries(title, targets, unit="short", desc="", w=12, h=8,
               thresholds=None, threshold_line=False, stack=False, decimals=None):
    custom = {
        "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
        "showPoints": "never", "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if threshold_line else "off"},
    }
    defaults = {"unit": unit, "custom": custom,
                "thresholds": _thresholds(thresholds or GREEN),
                "color": {"mode": "palette-classic"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries", "title": title, "description": desc,
        "datasource": DS, "_w": w, "_h": h,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(targets),
    }


def stat(title, targets, unit="short", desc="", w=4, h=4, thresholds=None,
         graph=True, decimals=None):
    defaults = {"unit": unit, "thresholds": _thresholds(thresholds or GREEN),
                "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat", "title": title, "description": desc,
        "datasource": DS, "_w": w, "_h": h,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value", "graphMode": "area" if graph else "none",
            "justifyMode": "auto", "orientation": "auto", "textMode": "auto",
            "wideLayout": True, "showPercentChange": False,
        },
        "targets": _targets(targets),
    }


def bargauge(title, targets, unit="short", desc="", w=12, h=8):
    return {
        "type": "bargauge", "title": title, "description": desc,
        "datasource": DS, "_w": w, "_h": h,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0,
                                     "thresholds": _thresholds(GREEN),
                                     "color": {"mode": "palette-classic"}},
                        "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal", "displayMode": "gradient",
            "showUnfilled": True, "valueMode": "color", "namePlacement": "auto",
            "sizing": "auto", "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300,
        },
        "targets": _targets(targets),
    }


class S:
    """One SQL query of a Postgres panel (Grafana macros allowed:
    $__timeFrom(), $__timeTo(), $__timeFilter(column))."""

    def __init__(self, sql: str):
        self.sql = " ".join(sql.split())


def table(title, query, desc="", w=12, h=8, units=None):
    """A table of rows from Postgres; `units` maps column names to units."""
    overrides = [{"matcher": {"id": "byName", "options": col},
                  "properties": [{"id": "unit", "value": unit}]}
                 for col, unit in (units or {}).items()]
    return {
        "type": "table", "title": title, "description": desc,
        "datasource": PG, "_w": w, "_h": h,
        "fieldConfig": {"defaults": {"thresholds": _thresholds(GREEN),
                                     "color": {"mode": "thresholds"}},
                        "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "fields": ""}},
        "targets": [{"datasource": PG, "refId": "A", "rawSql": query.sql, "format": "table",
                     "rawQuery": True, "editorMode": "code"}],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def layout(panels):
    """Flow panels left to right in Grafana's 24-column grid; rows start a line."""
    x = y = line_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if p["type"] == "row" or x + w > 24:
            y += line_h
            x = line_h = 0
        p["id"] = pid
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_h = max(line_h, h)
        if p["type"] == "row":
            y += h
            x = line_h = 0
        out.append(p)
    return out


def datasource_var():
    return {
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
        "regex": "", "includeAll": False, "multi": False, "options": [],
        "skipUrlSync": False,
    }


def postgres_var():
    return {
        "name": "postgres", "label": "Postgres", "type": "datasource",
        "query": "grafana-postgresql-datasource", "current": {}, "hide": 0, "refresh": 1,
        "regex": "", "includeAll": False, "multi": False, "options": [],
        "skipUrlSync": False,
    }


def instance_var(service):
    q = f'label_values(up{{service="{service}"}}, instance)'
    return {
        "name": "instance", "label": "Instance", "type": "query", "datasource": DS,
        "query": {"query": q, "refId": "instance"}, "definition": q,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2,
        "regex": "", "sort": 1, "hide": 0, "options": [], "skipUrlSync": False,
    }


def dashboard(uid, title, desc, panels, variables=(), requires=()):
    return {
        "__requires_services": list(requires),  # stripped before writing; used by check
        "id": None,
        "uid": uid,
        "title": title,
        "description": desc,
        "tags": ["achilles"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "weekStart": "",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": [{
            "title": "Achilles dashboards", "type": "dashboards", "tags": ["achilles"],
            "asDropdown": True, "includeVars": False, "keepTime": True,
            "targetBlank": False, "icon": "external link", "tooltip": "", "url": "",
        }],
        "templating": {"list": [datasource_var(), *variables]},
        "panels": layout(panels),
    }


# --------------------------------------------------------------------------
# Shared queries
# --------------------------------------------------------------------------
def or_zero(expr, label=None, value="none"):
    """`expr`, or a single 0 when it has no series yet (a labelled counter has
    none before its first increment). With `label`, the 0 carries label=value so
    legends stay readable."""
    zero = "vector(0)" if label is None else f'label_replace(vector(0), "{label}", "{value}", "", "")'
    return f"({expr}) or on() {zero}"


def quantile(q, metric, by, selector=""):
    sel = f"{{{selector}}}" if selector else ""
    return (f"histogram_quantile({q}, sum by ({', '.join([*by, 'le'])}) "
            f"(rate({metric}_bucket{sel}[{RI}])))")


def quantiles(metric, by, selector="", label_prefix=""):
    legend_by = " ".join("{{" + b + "}}" for b in by)
    return [T(quantile(q, metric, by, selector), f"p{int(q * 100)} {label_prefix}{legend_by}".strip())
            for q in (0.5, 0.95, 0.99)]


def lag_by_partition(selector):
    sel = f"{{{selector}}}" if selector else ""
    return f"max by (consumer, topic, partition) (achilles_consumer_lag_records{sel})"


FRESHNESS_TARGET = [(None, "green"), (0.25, "red")]
FRESHNESS_DESC = ("Delay from ingest (the API accepted the event) until the row derived from it "
                  "was committed. Target: p95 under 250 ms (the red line; the alert "
                  "AchillesFreshnessP95High uses achilles:freshness_p95_target_seconds).")


def consumer_panels(service, consumers, stage):
    """The panels every consumer service has: throughput, lag, batches,
    Postgres writes, freshness, dead letters, retries, rebalances."""
    inst = f'service="{service}", instance=~"$instance"'
    cons = "|".join(consumers)
    csel = f'{inst}, consumer=~"{cons}"'
    return [
        row("Throughput and lag"),
        stat("Up", [T(f'sum(up{{{inst}}})', "up")], desc="Instances Prometheus scrapes successfully.",
             thresholds=[(None, "red"), (1, "green")], graph=False),
        stat("Records consumed /s", [T(f"sum(rate(achilles_consumer_records_total{{{csel}}}[{RI}]))", "records/s")],
             unit="ops"),
        stat("Lag (records)", [T(f"sum({lag_by_partition(csel)})", "lag")],
             thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
             desc="High watermark minus committed offset, summed over partitions (librdkafka statistics, every 5 s)."),
        stat(f"Freshness p95 ({stage})", [T(quantile(0.95, "achilles_freshness_seconds", ["stage"], f'{inst}, stage="{stage}"'), "p95")],
             unit="s", thresholds=FRESHNESS_TARGET, desc=FRESHNESS_DESC),
        stat("Dead letters /s", [T(or_zero(f"sum(rate(achilles_deadletter_records_total{{{csel}}}[{RI}]))"), "dead letters/s")],
             unit="ops", thresholds=[(None, "green"), (0.001, "orange")]),
        stat("Retried batches /s", [T(or_zero(f"sum(rate(achilles_consumer_retries_total{{{csel}}}[{RI}]))"), "retries/s")],
             unit="ops", thresholds=[(None, "green"), (0.001, "orange")]),
        timeseries("Records consumed by consumer and topic",
                   [T(f"sum by (consumer, topic) (rate(achilles_consumer_records_total{{{csel}}}[{RI}]))", "{{consumer}} {{topic}}")],
                   unit="ops"),
        timeseries("Consumer lag by partition",
                   [T(lag_by_partition(csel), "{{consumer}} {{topic}}[{{partition}}]")],
                   desc="Per partition; the max over instances, so two replicas reporting one partition during a rebalance are not added up."),
        row("Batches and Postgres"),
        timeseries("Batch size",
                   [T(quantile(q, "achilles_consumer_batch_records", ["consumer"], csel), f"p{int(q * 100)} {{{{consumer}}}}")
                    for q in (0.5, 0.95)],
                   desc="Records per processed batch."),
        timeseries("Postgres write transaction latency",
                   quantiles("achilles_db_write_seconds", ["consumer"], csel), unit="s"),
        timeseries(f"Freshness ({stage})",
                   quantiles("achilles_freshness_seconds", ["stage"], f'{inst}, stage="{stage}"'),
                   unit="s", thresholds=FRESHNESS_TARGET, threshold_line=True, desc=FRESHNESS_DESC),
        timeseries("Batches processed /s",
                   [T(f"sum by (consumer) (rate(achilles_consumer_batch_records_count{{{csel}}}[{RI}]))", "{{consumer}}")],
                   unit="ops"),
        row("Failures"),
        timeseries("Dead-lettered records by reason",
                   [T(or_zero(f"sum by (consumer, reason) (rate(achilles_deadletter_records_total{{{csel}}}[{RI}]))", "reason"),
                      "{{consumer}} {{reason}}")],
                   unit="ops", desc="Records sent to the dead-letter topic (reason in its headers). 'none' = nothing dead-lettered yet."),
        timeseries("Retried batches by cause",
                   [T(or_zero(f"sum by (consumer, cause) (rate(achilles_consumer_retries_total{{{csel}}}[{RI}]))", "cause"),
                      "{{consumer}} {{cause}}")],
                   unit="ops", desc="A failing batch is retried with backoff, never skipped. 'none' = no retries yet."),
        timeseries("Rebalances",
                   [T(f"sum by (consumer, kind) (increase(achilles_consumer_rebalances_total{{{csel}}}[{RI}]))", "{{consumer}} {{kind}}")],
                   desc="Partition assignments and revocations per rate interval."),
        timeseries("Kafka produce acknowledgement latency",
                   [T(or_zero(quantile(0.99, "achilles_kafka_produce_ack_seconds", ["topic"], inst), "topic"), "p99 {{topic}}")],
                   unit="s", desc="Republished and dead-lettered records: publish until the broker acknowledged. 'none' = nothing published yet."),
    ]


# --------------------------------------------------------------------------
# The dashboards
# --------------------------------------------------------------------------
def overview():
    up = 'service=~"api|raw-sink|processor|agent"'
    return dashboard(
        "achilles-overview", "Achilles / Overview",
        "The whole pipeline: throughput, errors, consumer lag, freshness and dead letters.",
        [
            row("Health"),
            stat("Services up", [T(f"sum by (service) (up{{{up}}})", "{{service}}")],
                 desc="Scraped instances per service (0 = down or not deployed).",
                 thresholds=[(None, "red"), (1, "green")], graph=False),
            stat("Events accepted /s", [T(or_zero(f'sum(rate(achilles_ingest_events_total{{outcome="accepted"}}[{RI}]))'), "accepted/s")],
                 unit="ops"),
            stat("API 5xx ratio", [T(
                or_zero(f"(sum(rate(achilles_http_requests_total{{status=~\"5..\", {NOT_TRAFFIC}}}[{RI}])) or vector(0))"
                        f" / sum(rate(achilles_http_requests_total{{{NOT_TRAFFIC}}}[{RI}]))"), "5xx")],
                 unit="percentunit", thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
                 desc="Share of API requests answered 5xx (health and metrics routes excluded)."),
            stat("Consumer lag", [T(or_zero(f"sum({lag_by_partition('')})"), "lag")],
                 thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
                 desc="Records not yet processed, all consumers and partitions."),
            stat("Freshness p95 (landed)", [T(quantile(0.95, "achilles_freshness_seconds", ["stage"], 'stage="landed"'), "p95")],
                 unit="s", thresholds=FRESHNESS_TARGET, desc=FRESHNESS_DESC),
            stat("Dead letters /s", [T(or_zero(f"sum(rate(achilles_deadletter_records_total[{RI}]))"), "dead letters/s")],
                 unit="ops", thresholds=[(None, "green"), (0.001, "orange")]),
            row("Throughput"),
            timeseries("Events submitted by outcome",
                       [T(f"sum by (outcome) (rate(achilles_ingest_events_total[{RI}]))", "{{outcome}}")],
                       unit="ops", stack=True, w=8,
                       desc="Events submitted over HTTP: accepted, duplicate (same event hash) or rejected."),
            timeseries("Records consumed",
                       [T(f"sum by (consumer, topic) (rate(achilles_consumer_records_total[{RI}]))", "{{consumer}} {{topic}}")],
                       unit="ops", w=8),
            timeseries("Rows landed in Postgres",
                       [T(f"sum by (table, outcome) (rate(achilles_landed_rows_total[{RI}]))", "{{table}} {{outcome}}")],
                       unit="ops", w=8, desc="Raw sink writes: inserted, or skipped as duplicates (ON CONFLICT DO NOTHING)."),
            row("Errors"),
            timeseries("API responses by status",
                       [T(f"sum by (status) (rate(achilles_http_requests_total{{{NOT_TRAFFIC}}}[{RI}]))", "{{status}}")],
                       unit="reqps", w=8),
            timeseries("Dead-letter rate",
                       [T(or_zero(f"sum by (consumer, reason) (rate(achilles_deadletter_records_total[{RI}]))", "reason"),
                          "{{consumer}} {{reason}}")],
                       unit="ops", w=8, desc="'none' = nothing dead-lettered in the interval."),
            timeseries("503s from Kafka backpressure",
                       [T(or_zero(f"sum by (cause) (rate(achilles_ingest_backpressure_total[{RI}]))", "cause"), "{{cause}}")],
                       unit="reqps", w=8, desc="Ingest requests refused because Kafka could not take the records. 'none' = no backpressure."),
            row("Lag and freshness"),
            timeseries("Consumer lag",
                       [T(f"sum by (consumer, topic) ({lag_by_partition('')})", "{{consumer}} {{topic}}")],
                       desc="Summed over partitions (max over instances per partition)."),
            timeseries("Freshness p50 / p95 / p99",
                       quantiles("achilles_freshness_seconds", ["stage"]),
                       unit="s", thresholds=FRESHNESS_TARGET, threshold_line=True, desc=FRESHNESS_DESC),
        ],
        requires=("api", "raw-sink"),
    )


def api():
    inst = 'service="api", instance=~"$instance"'
    traffic = f"{inst}, {NOT_TRAFFIC}"
    return dashboard(
        "achilles-api", "Achilles / API",
        "achilles-api: HTTP traffic, latency, ingest outcomes, Kafka publishing and backpressure.",
        [
            row("Traffic"),
            stat("Up", [T(f"sum(up{{{inst}}})", "up")], thresholds=[(None, "red"), (1, "green")], graph=False),
            stat("Requests /s", [T(f"sum(rate(achilles_http_requests_total{{{traffic}}}[{RI}]))", "req/s")], unit="reqps"),
            stat("5xx ratio", [T(or_zero(
                f"(sum(rate(achilles_http_requests_total{{{traffic}, status=~\"5..\"}}[{RI}])) or vector(0))"
                f" / sum(rate(achilles_http_requests_total{{{traffic}}}[{RI}]))"), "5xx")],
                unit="percentunit", thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")]),
            stat("p99 latency", [T(quantile(0.99, "achilles_http_request_duration_seconds", [], traffic), "p99")],
                 unit="s", thresholds=[(None, "green"), (0.5, "orange"), (1, "red")]),
            stat("Producer queue", [T(f"sum(achilles_kafka_producer_queue_messages{{{inst}}})", "records")],
                 thresholds=[(None, "green"), (100000, "orange"), (180000, "red")],
                 desc="Records waiting in the local producer queue (full at kafka.queue_max_messages, default 200000 → 503)."),
            stat("Backpressure 503s /s", [T(or_zero(f"sum(rate(achilles_ingest_backpressure_total{{{inst}}}[{RI}]))"), "503/s")],
                 unit="reqps", thresholds=[(None, "green"), (0.001, "red")]),
            timeseries("Requests by route and status",
                       [T(f"sum by (route, method, status) (rate(achilles_http_requests_total{{{traffic}}}[{RI}]))",
                          "{{method}} {{route}} {{status}}")], unit="reqps"),
            timeseries("Latency by route (p50 / p95 / p99)",
                       quantiles("achilles_http_request_duration_seconds", ["route"], traffic), unit="s"),
            row("Ingest"),
            timeseries("Events by outcome",
                       [T(f"sum by (outcome) (rate(achilles_ingest_events_total{{{inst}}}[{RI}]))", "{{outcome}}")],
                       unit="ops", stack=True, w=8),
            timeseries("Rejections by reason",
                       [T(or_zero(f"sum by (reason) (rate(achilles_ingest_rejections_total{{{inst}}}[{RI}]))", "reason"), "{{reason}}")],
                       unit="ops", w=8, desc="Validation codes of rejected events. 'none' = nothing rejected."),
            timeseries("Request body size (p50 / p95)",
                       [T(quantile(q, "achilles_http_request_body_bytes", ["route"], inst), f"p{int(q * 100)} {{{{route}}}}")
                        for q in (0.5, 0.95)], unit="bytes", w=8),
            row("Kafka"),
            timeseries("Broker acknowledgement latency",
                       quantiles("achilles_kafka_produce_ack_seconds", ["topic"], inst), unit="s", w=8,
                       desc="Publish until the broker acknowledged (acks=all); the API answers 202 only after it."),
            timeseries("Producer queue by instance",
                       [T(f"achilles_kafka_producer_queue_messages{{{inst}}}", "{{instance}}")], w=8),
            timeseries("503s from backpressure by cause",
                       [T(or_zero(f"sum by (cause) (rate(achilles_ingest_backpressure_total{{{inst}}}[{RI}]))", "cause"), "{{cause}}")],
                       unit="reqps", w=8, desc="queue_full, broker_unavailable or kafka_error. 'none' = no backpressure."),
        ],
        variables=[instance_var("api")],
        requires=("api",),
    )


def raw_sink():
    inst = 'service="raw-sink", instance=~"$instance"'
    panels = consumer_panels("raw-sink", ["landing", "gate"], "landed")
    panels += [
        row("Landing and intake gate"),
        timeseries("Rows landed by outcome",
                   [T(f"sum by (table, outcome) (rate(achilles_landed_rows_total{{{inst}}}[{RI}]))", "{{table}} {{outcome}}")],
                   unit="ops", stack=True, desc="inserted, or duplicate (already stored: a replay or a retried batch)."),
        timeseries("Intake gate: records in, dead-lettered",
                   [T(or_zero(f'sum(rate(achilles_consumer_records_total{{{inst}, consumer="gate"}}[{RI}]))'), "consumed"),
                    T(or_zero(f'sum(rate(achilles_deadletter_records_total{{{inst}, consumer="gate"}}[{RI}]))'), "dead-lettered")],
                   unit="ops", desc="Records written straight to the intake topic; valid ones are republished to the events topic."),
    ]
    return dashboard(
        "achilles-raw-sink", "Achilles / Raw sink",
        "achilles-raw-sink: the landing consumer (events topic → Postgres) and the intake gate (intake topic → events topic).",
        panels, variables=[instance_var("raw-sink")], requires=("raw-sink",),
    )


def processor():
    inst = 'service="processor", instance=~"$instance"'
    panels = consumer_panels("processor", ["processor"], "derived")
    panels += [
        row("Sessions, clusters, correlations"),
        timeseries("Active sessions", [T(f"sum(achilles_active_sessions{{{inst}}})", "active")], w=8,
                   desc="Sessions the processor holds state for (started, not ended)."),
        timeseries("Sessions ended by status",
                   [T(or_zero(f"sum by (status) (rate(achilles_sessions_ended_total{{{inst}}}[{RI}]))", "status"), "{{status}}")],
                   unit="ops", w=8),
        timeseries("Late events",
                   [T(or_zero(f"sum by (disposition) (rate(achilles_late_events_total{{{inst}}}[{RI}]))", "disposition"),
                      "{{disposition}}")],
                   unit="ops", w=8, desc="accepted = within the allowed lateness; too_late = counted, not correlated."),
        timeseries("Error clusters: new, occurrences",
                   [T(or_zero(f"sum(rate(achilles_clusters_created_total{{{inst}}}[{RI}]))"), "new clusters"),
                    T(or_zero(f"sum(rate(achilles_cluster_occurrences_total{{{inst}}}[{RI}]))"), "clustered failures")],
                   unit="ops"),
        timeseries("Correlations by match kind",
                   [T(or_zero(f"sum by (match_kind) (rate(achilles_correlations_total{{{inst}}}[{RI}]))", "match_kind"),
                      "{{match_kind}}")],
                   unit="ops", desc="Induced-error rows written, by how the failure points at the edited file (error_location, mention, test_subject; context rows are candidates)."),
    ]
    return dashboard(
        "achilles-processor", "Achilles / Stream processor",
        "achilles-processor: session state, error clustering and induced-error correlation (consumer `processor`).",
        panels, variables=[instance_var("processor")], requires=("processor",),
    )


def agent():
    inst = 'service="agent", instance=~"$instance"'
    panels = consumer_panels("agent", ["agent", "agent_deep"], "insight")
    panels += [
        row("Insights"),
        timeseries("Insights raised by type and severity",
                   [T(or_zero(f"sum by (type, severity) (rate(achilles_insights_raised_total{{{inst}}}[{RI}]))", "type"),
                      "{{type}} {{severity}}")],
                   unit="ops"),
        bargauge("Insights in the time range",
                 [T(or_zero(f"sum by (type, severity) (increase(achilles_insights_raised_total{{{inst}}}[$__range]))", "type"),
                    "{{type}} ({{severity}})", instant=True)]),
    ]
    return dashboard(
        "achilles-agent", "Achilles / Monitoring agent",
        "achilles-agent: session verdicts, reports and insights (consumers `agent` (light mode) and `agent_deep` (deep mode)).",
        panels, variables=[instance_var("agent")], requires=("agent",),
    )


def domain():
    return dashboard(
        "achilles-domain", "Achilles / Domain",
        "What the agents do: sessions, error clusters, correlations and insights. "
        "Per-cluster detail (which templates) lives in Postgres (error_clusters), not in metrics.",
        [
            row("Sessions"),
            stat("Active sessions", [T('sum(achilles_active_sessions{service="processor"})', "active")],
                 desc="Sessions the stream processor holds state for."),
            stat("Sessions started", [T(or_zero(
                'sum(increase(achilles_http_requests_total{route="/v1/sessions/start", status="202"}[$__range]))'), "started")],
                desc="Over HTTP, in the time range."),
            stat("Sessions ended", [T(or_zero('sum(increase(achilles_sessions_ended_total[$__range]))'), "ended")],
                 desc="Ends the processor folded in, in the time range."),
            stat("New error clusters", [T(or_zero('sum(increase(achilles_clusters_created_total[$__range]))'), "clusters")],
                 desc="Error templates seen for the first time, in the time range."),
            stat("Correlations", [T(or_zero('sum(increase(achilles_correlations_total[$__range]))'), "correlations")],
                 desc="Agent edits followed by failures, in the time range."),
            stat("Insights", [T(or_zero('sum(increase(achilles_insights_raised_total[$__range]))'), "insights")],
                 desc="Raised by the monitoring agent, in the time range."),
            timeseries("Active sessions", [T('sum(achilles_active_sessions{service="processor"})', "active")], w=8),
            timeseries("Sessions started and ended",
                       [T(or_zero(f'sum(rate(achilles_http_requests_total{{route="/v1/sessions/start", status="202"}}[{RI}]))'), "started (API)"),
                        T(or_zero(f"sum by (status) (rate(achilles_sessions_ended_total[{RI}]))", "status"), "ended {{status}}")],
                       unit="ops", w=8),
            timeseries("Events by outcome",
                       [T(f"sum by (outcome) (rate(achilles_ingest_events_total[{RI}]))", "{{outcome}}")],
                       unit="ops", stack=True, w=8),
            row("Error clusters and correlations"),
            bargauge("Clustering by consumer (time range)",
                     [T(or_zero('sum by (consumer) (increase(achilles_clusters_created_total[$__range]))', "consumer"),
                        "new clusters {{consumer}}", instant=True),
                      T(or_zero('sum by (consumer) (increase(achilles_cluster_occurrences_total[$__range]))', "consumer"),
                        "clustered failures {{consumer}}", instant=True)],
                     w=8, desc="The busiest clusters by name are in Postgres: "
                               "select template, occurrence_count from error_clusters order by occurrence_count desc limit 10."),
            timeseries("Error clusters: new vs clustered failures",
                       [T(or_zero(f"sum(rate(achilles_clusters_created_total[{RI}]))"), "new clusters"),
                        T(or_zero(f"sum(rate(achilles_cluster_occurrences_total[{RI}]))"), "clustered failures")],
                       unit="ops", w=8),
            timeseries("Correlations by match kind",
                       [T(or_zero(f"sum by (match_kind) (rate(achilles_correlations_total[{RI}]))", "match_kind"), "{{match_kind}}")],
                       unit="ops", w=8),
            row("Insights"),
            bargauge("Insights by type and severity (time range)",
                     [T(or_zero('sum by (type, severity) (increase(achilles_insights_raised_total[$__range]))', "type"),
                        "{{type}} ({{severity}})", instant=True)]),
            timeseries("Insights by severity",
                       [T(or_zero(f"sum by (severity) (rate(achilles_insights_raised_total[{RI}]))", "severity"), "{{severity}}")],
                       unit="ops"),
        ],
        requires=("processor", "agent"),
    )


def spend():
    usd_h = "currencyUSD"
    cost = "achilles_llm_cost_usd_total"
    tokens = "achilles_llm_tokens_total"
    return dashboard(
        "achilles-spend", "Achilles / Spend and quality",
        "What the agents cost and how well they work: LLM spend and tokens by tenant, provider and model "
        "(Prometheus, counted once per stored llm_call), the daily budget, recurring error clusters and the "
        "agent leaderboard (Postgres views; induced errors count correlations with confidence >= 0.5), "
        "and live insight delivery.",
        [
            row("Spend"),
            stat("Spend in range", [T(or_zero(f"sum(increase({cost}[$__range]))"), "USD")], unit=usd_h,
                 decimals=2, desc="US dollars of the llm_call events stored in the time range."),
            stat("Spend, last 24 h", [T(or_zero("sum(tenant:achilles_llm_cost_usd:increase24h)"), "USD")],
                 unit=usd_h, decimals=2,
                 desc="The figure the daily budget alert (AchillesTenantDailyBudgetExceeded) compares, summed over tenants."),
            stat("Tokens in range", [T(or_zero(f"sum(increase({tokens}[$__range]))"), "tokens")], decimals=0),
            stat("Budget used (worst tenant, 24 h)",
                 [T(or_zero("max(tenant:achilles_llm_cost_usd:budget_ratio24h)"), "of budget")],
                 unit="percentunit", thresholds=[(None, "green"), (0.8, "orange"), (1, "red")],
                 desc="Highest share of its daily budget any tenant spent in the last 24 h "
                      "(achilles:llm_daily_budget_usd per tenant, else achilles:llm_daily_budget_usd:default)."),
            stat("Webhook deliveries failing /s",
                 [T(or_zero(f'sum(rate(achilles_webhook_deliveries_total{{outcome=~"failed|dead|refused"}}[{RI}]))'), "failing/s")],
                 unit="ops", thresholds=[(None, "green"), (0.001, "orange")]),
            stat("Insight streams open", [T(or_zero("sum(achilles_stream_clients)"), "streams")], decimals=0),
            timeseries("Spend rate by tenant (USD per hour)",
                       [T(or_zero(f"3600 * sum by (tenant) (rate({cost}[{RI}]))", "tenant"), "{{tenant}}")],
                       unit=usd_h, w=12,
                       desc="Tenants beyond spend.max_tenants are summed as 'other' (bounded cardinality, docs/metrics.md)."),
            bargauge("Spend by tenant (time range)",
                     [T(or_zero(f"sum by (tenant) (increase({cost}[$__range]))", "tenant"), "{{tenant}}", instant=True)],
                     unit=usd_h, w=12),
            bargauge("Spend by provider and model (time range)",
                     [T(or_zero(f"sum by (provider, model) (increase({cost}[$__range]))", "model"),
                        "{{provider}} {{model}}", instant=True)],
                     unit=usd_h, w=12),
            timeseries("Tokens by model and direction",
                       [T(or_zero(f"sum by (model, direction) (rate({tokens}[{RI}]))", "model"),
                          "{{model}} {{direction}}")],
                       unit="short", w=12, desc="Tokens per second of stored llm_call events."),
            row("Quality across sessions (Postgres)"),
            table("Agent leaderboard (sessions started in range)",
                  S("""SELECT agent_name AS agent, agent_model AS model, sessions, actions,
                              success_rate, induced_errors_per_100_actions AS induced_per_100,
                              mean_time_to_fix_ms AS time_to_fix, cost_per_successful_action AS cost_per_ok,
                              cost_usd AS cost, tenant_id AS tenant
                       FROM agent_leaderboard_between($__timeFrom(), $__timeTo())
                       ORDER BY success_rate DESC NULLS LAST, induced_errors_per_100_actions NULLS LAST
                       LIMIT 20"""),
                  w=24, h=8, units={"success_rate": "percentunit", "time_to_fix": "ms",
                                    "cost_per_ok": "currencyUSD", "cost": "currencyUSD"},
                  desc="Judged sessions: success rate, induced errors per 100 agent actions (correlations with "
                       "confidence >= 0.5), mean time to fix, cost per successful action (view agent_leaderboard_between)."),
            table("Top recurring error clusters (in range, against the range before)",
                  S("""SELECT template, sessions, occurrences, previous_sessions AS sessions_before, trend,
                              last_seen, tenant_id AS tenant
                       FROM recurring_clusters_between($__timeFrom(), $__timeTo())
                       ORDER BY sessions DESC, occurrences DESC LIMIT 15"""),
                  w=14, h=9, desc="Clusters with occurrences in the time range; trend compares the sessions they "
                                  "occur in with the range of the same length before (function recurring_clusters_between)."),
            table("Spend by agent and model (sessions started in range)",
                  S("""SELECT agent_name AS agent, agent_model AS model, count(*) AS sessions,
                              sum(input_tokens + output_tokens) AS tokens, sum(cost_usd) AS cost
                       FROM session_overview WHERE $__timeFilter(started_at)
                       GROUP BY 1, 2 ORDER BY cost DESC LIMIT 15"""),
                  w=10, h=9, units={"cost": "currencyUSD"}),
            row("Live insights"),
            timeseries("Insight transitions recorded",
                       [T(or_zero(f"sum by (transition) (rate(achilles_insight_transitions_total[{RI}]))", "transition"),
                          "{{transition}}")],
                       unit="ops", w=8, desc="Raised, escalated and resolved insights, each recorded once for the stream and webhooks."),
            timeseries("Webhook deliveries by outcome",
                       [T(or_zero(f"sum by (outcome) (rate(achilles_webhook_deliveries_total[{RI}]))", "outcome"),
                          "{{outcome}}")],
                       unit="ops", w=8, desc="delivered; failed (retried with backoff); dead (gave up); refused (SSRF policy)."),
            timeseries("Insight stream clients and drops",
                       [T(or_zero("sum(achilles_stream_clients)"), "open streams"),
                        T(or_zero(f"sum by (reason) (increase(achilles_stream_disconnects_total[{RI}]))", "reason"),
                          "dropped {{reason}}")],
                       w=8, desc="Streams dropped because the client stopped reading (slow) or too many were open (full)."),
        ],
        variables=[postgres_var()],
        requires=("raw-sink", "agent"),
    )


DASHBOARDS = {
    "overview": overview,
    "api": api,
    "raw-sink": raw_sink,
    "processor": processor,
    "agent": agent,
    "domain": domain,
    "spend": spend,
}


def render(name):
    d = DASHBOARDS[name]()
    d.pop("__requires_services")
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def requires(name):
    return DASHBOARDS[name]()["__requires_services"]


# --------------------------------------------------------------------------
# Reading dashboards back (JSON files, so hand edits are checked too)
# --------------------------------------------------------------------------
def load(name, directory=OUT_DIR):
    with open(os.path.join(directory, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def iter_panels(panels):
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def sql_queries(dash):
    """(panel title, refId, sql) for every Postgres query."""
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("rawSql"):
                yield p.get("title", "?"), t.get("refId", "?"), t["rawSql"]


def sql_substitute(sql, range_="1 hour"):
    """Grafana's SQL macros as Postgres expressions (the time range is the
    last `range_`)."""
    frm, to = f"(now() - interval '{range_}')", "now()"
    sql = sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    return re.sub(r"\$__timeFilter\(([^)]+)\)", rf"(\1 BETWEEN {frm} AND {to})", sql)


def known_relations():
    """Tables, views and functions the migrations create."""
    names = set()
    for f in sorted(os.listdir(MIGRATIONS)):
        if f.endswith(".sql"):
            text = open(os.path.join(MIGRATIONS, f), encoding="utf-8").read()
            names.update(m.lower() for m in re.findall(
                r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)",
                text, flags=re.I))
    return names


def lint_sql(title, sql, relations):
    problems = []
    if not re.match(r"^\s*SELECT\b", sql, flags=re.I) or ";" in sql:
        problems.append(f"panel {title!r}: SQL must be one SELECT")
    for rel in re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", sql, flags=re.I):
        if rel.lower() not in relations:
            problems.append(f"panel {title!r}: {rel} is not a table, view or function of migrations/")
    for macro in re.findall(r"\$__([A-Za-z]+)", sql):
        if macro not in ("timeFrom", "timeTo", "timeFilter"):
            problems.append(f"panel {title!r}: unsupported macro $__{macro}")
    return problems


def queries(dash):
    """(panel title, refId, expr, instant) for every Prometheus query."""
    for p in iter_panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p.get("title", "?"), t.get("refId", "?"), t["expr"], bool(t.get("instant"))


def substitute(expr, dash, rate_interval="1m", interval="15s", range_="1h"):
    """Grafana's variables replaced by concrete values, as Grafana would."""
    builtins = {"__rate_interval": rate_interval, "__interval": interval, "__range": range_,
                "__range_s": "3600", "__interval_ms": "15000"}
    variables = {}
    for v in dash.get("templating", {}).get("list", []):
        if v.get("includeAll") and v.get("allValue"):
            variables[v["name"]] = v["allValue"]
        else:
            cur = v.get("current", {}).get("value")
            variables[v["name"]] = cur[0] if isinstance(cur, list) and cur else (cur or "")

    def repl(m):
        name = m.group(1) or m.group(2)
        name = name.split(":")[0]
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        raise KeyError(f"unknown variable ${name} in: {expr}")

    return re.sub(r"\$\{([^}]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


# --------------------------------------------------------------------------
# lint
# --------------------------------------------------------------------------
KNOWN_LABELS = {
    # targets (scrape configs / ServiceMonitor)
    "service", "instance", "job",
    # histogram buckets
    "le",
    # shared/core/src/metrics.rs
    "route", "method", "status", "outcome", "reason", "cause", "topic", "consumer",
    "partition", "kind", "stage", "table", "match_kind", "disposition", "type", "severity",
    "tenant", "provider", "model", "direction", "signal", "transition",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "inf", "nan"}


def known_metrics():
    """Metrics of metrics.rs (with their histogram series) and the names
    the recording rules record."""
    src = open(METRICS_RS, encoding="utf-8").read()
    names = set(re.findall(r'"(achilles_[a-z0-9_]+)"', src))
    out = {"up"}
    rules_dir = os.path.join(ROOT, "deploy", "prometheus", "rules")
    for f in sorted(os.listdir(rules_dir)):
        out.update(re.findall(r"^\s*-\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*)",
                              open(os.path.join(rules_dir, f), encoding="utf-8").read(), flags=re.M))
    for n in names:
        out.add(n)
        out.update({n + "_bucket", n + "_sum", n + "_count"})
    return out


def lint_dashboard(name, dash, metrics, relations=None):
    problems = []
    relations = relations if relations is not None else known_relations()
    if dash.get("uid") != "achilles-" + name:
        problems.append(f"uid should be achilles-{name}, is {dash.get('uid')!r}")
    tvars = [v.get("name") for v in dash.get("templating", {}).get("list", [])]
    if "datasource" not in tvars:
        problems.append("no `datasource` template variable")
    ids = set()
    for p in iter_panels(dash.get("panels", [])):
        title = p.get("title", "?")
        if p.get("id") in ids:
            problems.append(f"panel {title!r}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("type") == PG["type"]:
            if "postgres" not in tvars:
                problems.append(f"panel {title!r}: Postgres panels need the `postgres` template variable")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${postgres}":
                    problems.append(f"panel {title!r} {t.get('refId')}: query datasource must be ${{postgres}}")
                if not t.get("rawSql"):
                    problems.append(f"panel {title!r} {t.get('refId')}: empty rawSql")
                else:
                    problems += lint_sql(title, t["rawSql"], relations)
            if not p.get("targets"):
                problems.append(f"panel {title!r}: no query")
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {title!r}: datasource must be {{uid: ${{datasource}}}}")
        if not p.get("targets"):
            problems.append(f"panel {title!r}: no query")
        for t in p.get("targets", []):
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"panel {title!r} {t.get('refId')}: query datasource must be ${{datasource}}")
            expr = t.get("expr", "")
            if not expr:
                problems.append(f"panel {title!r} {t.get('refId')}: empty expr")
                continue
            try:
                concrete = substitute(expr, dash)
            except KeyError as e:
                problems.append(f"panel {title!r}: {e}")
                continue
            stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', concrete)
            for metric in re.findall(r"(?<![A-Za-z0-9_:])([A-Za-z_:][A-Za-z0-9_:]*achilles[A-Za-z0-9_:]*)", stripped):
                if metric not in metrics:
                    problems.append(f"panel {title!r}: metric {metric} is neither defined in "
                                    "shared/core/src/metrics.rs nor recorded in deploy/prometheus/rules/")
            labels = set()
            for grp in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", stripped):
                labels.update(x.strip() for x in grp.split(",") if x.strip())
            for sel in re.findall(r"\{([^}]*)\}", concrete):
                labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
            for lbl in re.findall(r'label_replace\([^,]+,\s*"([^"]+)"', concrete):
                labels.add(lbl)
            for lbl in sorted(labels - KNOWN_LABELS - PROMQL_WORDS):
                problems.append(f"panel {title!r}: unknown label {lbl!r}")
            if "[" in stripped and "rate(" in stripped and "$__rate_interval" not in expr and "$__range" not in expr:
                problems.append(f"panel {title!r}: use [$__rate_interval] (or [$__range]) for rate/increase windows")
    return problems


def cmd_lint(_args):
    metrics = known_metrics()
    problems = []
    for name in DASHBOARDS:
        path = os.path.join(OUT_DIR, name + ".json")
        if not os.path.exists(path):
            problems.append(f"{name}.json is missing: run scripts/dashboards.py generate")
            continue
        try:
            dash = load(name)
        except json.JSONDecodeError as e:
            problems.append(f"{name}.json: invalid JSON: {e}")
            continue
        if open(path, encoding="utf-8").read() != render(name):
            problems.append(f"{name}.json differs from scripts/dashboards.py: run scripts/dashboards.py generate "
                            "(or port the hand edit into the generator)")
        problems += [f"{name}.json: {p}" for p in lint_dashboard(name, dash, metrics)]
    extra = sorted(set(f[:-5] for f in os.listdir(OUT_DIR) if f.endswith(".json")) - set(DASHBOARDS))
    problems += [f"{e}.json is not generated by scripts/dashboards.py" for e in extra]
    if problems:
        print("\n".join("  " + p for p in problems), file=sys.stderr)
        return 1
    n = sum(1 for name in DASHBOARDS for _ in queries(load(name)))
    m = sum(1 for name in DASHBOARDS for _ in sql_queries(load(name)))
    print(f"  {len(DASHBOARDS)} dashboards, {n} PromQL and {m} SQL queries: valid JSON, up to date, "
          "datasource variables, known metrics, labels and relations")
    return 0


def cmd_generate(args):
    os.makedirs(OUT_DIR, exist_ok=True)
    stale = []
    for name in DASHBOARDS:
        path = os.path.join(OUT_DIR, name + ".json")
        text = render(name)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not args.check:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
    if args.check and stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("wrote " if stale else "up to date: ") + ", ".join(stale or DASHBOARDS))
    return 0


def names_from(args):
    names = args.names or list(DASHBOARDS)
    unknown = [n for n in names if n not in DASHBOARDS]
    if unknown:
        sys.exit(f"unknown dashboard(s): {', '.join(unknown)} (known: {', '.join(DASHBOARDS)})")
    return names


def cmd_rules_file(args):
    """Every panel query as a recording rule, so `promtool check rules` parses
    all of them offline."""
    print("# generated by scripts/dashboards.py rules-file: every panel query, for promtool")
    print("groups:")
    for name in names_from(args):
        dash = load(name)
        print(f"  - name: dashboard-{name}")
        print("    rules:")
        for i, (title, ref, expr, _) in enumerate(queries(dash)):
            print(f"      - record: dashboard:{name.replace('-', '_')}:q{i}")
            print(f"        expr: {json.dumps(substitute(expr, dash, args.rate_interval))}")
    return 0


def cmd_exprs(args):
    for name in names_from(args):
        dash = load(name)
        for title, ref, expr, _ in queries(dash):
            print(f"{name}\t{title}\t{ref}\t{substitute(expr, dash, args.rate_interval)}")
    return 0


# --------------------------------------------------------------------------
# check: evaluate through Prometheus's HTTP API
# --------------------------------------------------------------------------
def prom_query(base, expr):
    url = base.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def is_zero_fallback(series):
    """The `or on() vector(0)` / label_replace(vector(0), L, "none") fallback."""
    metric = series.get("metric", {})
    return (not metric or set(metric.values()) == {"none"}) and float(series["value"][1]) == 0.0


def classify(data):
    result = data.get("result", [])
    if data.get("resultType") == "scalar":
        return "data", 1
    if not result:
        return "empty", 0
    values = [float(s["value"][1]) for s in result]
    if all(math.isnan(v) for v in values):
        return "nan", len(result)
    if all(is_zero_fallback(s) for s in result):
        return "zero", len(result)
    return "data", len(result)


def sql_rows(database_url, sql):
    """("data", rows) / ("empty", 0) / ("error", 0) for one SQL panel, run by psql."""
    import subprocess
    try:
        out = subprocess.run(["psql", "-X", "-w", "-qAt", "-v", "ON_ERROR_STOP=1", database_url,
                              "-c", f"SELECT count(*) FROM ({sql}) AS panel"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"          psql: {e}")
        return "error", 0
    if out.returncode != 0:
        print(f"          psql: {out.stderr.strip()}")
        return "error", 0
    n = int(out.stdout.strip() or 0)
    return ("data", n) if n > 0 else ("empty", 0)


def cmd_check(args):
    names = names_from(args)
    failed_panels = []
    counts = {"data": 0, "zero": 0, "empty": 0, "nan": 0, "error": 0}
    for name in names:
        dash = load(name)
        needed = requires(name)
        down = []
        for svc in needed:
            data = prom_query(args.prometheus, f'max(up{{service="{svc}"}})')
            if not data["result"] or float(data["result"][0]["value"][1]) != 1:
                down.append(svc)
        print(f"\n== {name}.json ({dash['title']})" +
              (f"  [service(s) not up: {', '.join(down)}]" if down else ""))
        for title, ref, expr, _ in queries(dash):
            concrete = substitute(expr, dash, args.rate_interval)
            try:
                status, n = classify(prom_query(args.prometheus, concrete))
            except RuntimeError as e:
                status, n = "error", 0
                print(f"   ERROR  {title} [{ref}]: {e}\n          {concrete}")
            counts[status] += 1
            mark = {"data": "ok   ", "zero": "ok(0)", "empty": "EMPTY", "nan": "NaN  ", "error": "ERROR"}[status]
            if status != "error":
                print(f"   {mark}  {title} [{ref}]" + (f"  ({n} series)" if status == "data" else ""))
            if status in ("empty", "nan", "error"):
                failed_panels.append((name, title, ref, status, concrete))
            elif status == "zero" and args.verbose:
                print(f"          {concrete}")
        for title, ref, sql in sql_queries(dash):
            concrete = sql_substitute(sql)
            if not args.database_url:
                counts["error"] += 1
                print(f"   ERROR  {title} [{ref}]: a Postgres panel needs --database-url")
                failed_panels.append((name, title, ref, "no database", concrete))
                continue
            status, n = sql_rows(args.database_url, concrete)
            counts[status] += 1
            mark = {"data": "ok   ", "empty": "EMPTY", "error": "ERROR"}[status]
            print(f"   {mark}  {title} [{ref}] (SQL)" + (f"  ({n} rows)" if status == "data" else ""))
            if status != "data":
                failed_panels.append((name, title, ref, status, concrete))
        if down and not args.allow_down:
            failed_panels.append((name, "-", "-", "service down", f"up{{service=~\"{'|'.join(down)}\"}} != 1"))
    print(f"\n{counts['data']} queries returned data, {counts['zero']} a single unlabelled 0 "
          f"(their `or vector(0)` fallback: no such traffic yet, or a real 0), "
          f"{counts['empty']} no data, {counts['nan']} only NaN, {counts['error']} errors")
    if failed_panels:
        print("\nPanels without data:", file=sys.stderr)
        for name, title, ref, status, expr in failed_panels:
            print(f"  {name}.json: {title} [{ref}]: {status}\n      {expr}", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--check", action="store_true")
    sub.add_parser("lint")
    e = sub.add_parser("exprs")
    e.add_argument("names", nargs="*")
    e.add_argument("--rate-interval", default="1m")
    r = sub.add_parser("rules-file")
    r.add_argument("names", nargs="*")
    r.add_argument("--rate-interval", default="1m")
    c = sub.add_parser("check")
    c.add_argument("--prometheus", required=True)
    c.add_argument("--rate-interval", default="1m")
    c.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="Postgres the SQL panels are run against (default: $DATABASE_URL)")
    c.add_argument("--allow-down", action="store_true",
                   help="do not fail a dashboard because its service is not up")
    c.add_argument("-v", "--verbose", action="store_true")
    c.add_argument("names", nargs="*")
    args = ap.parse_args()
    return {"generate": cmd_generate, "lint": cmd_lint, "exprs": cmd_exprs,
            "rules-file": cmd_rules_file, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
