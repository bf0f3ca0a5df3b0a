#!/usr/bin/env python3
"""bench/render.py: turn the phase reports of scripts/bench.sh into results.

Reads the `achilles load --json` reports (one per phase), the clustering
output, the RSS readings and the criterion estimates from --work; writes
bench/results/latest.json plus a timestamped copy, and replaces the blocks
between the `<!-- bench:... -->` markers in bench/README.md. Never invents a
figure: whatever could not be measured is null, with the reason in `notes`.
Standard library only.
"""
import argparse
import json
import os
import re
import subprocess
from datetime import datetime, timezone

TARGETS = {
    "ingest_events_per_s": 50_000,
    "landed_events_per_s": 30_000,
    "derived_events_per_s": 30_000,
    "ingest_to_broker_ratio": 0.5,
    "freshness_p95_ms": 100,
    "freshness_p99_ms": 250,
    "api_batch_p99_ms": 10,
    "rss_mib": 256,
}
# Processes in .stack/*.pid that are not Achilles services (no RSS target).
NOT_SERVICES = {"tansu"}


def median(values):
    """Median of the measured values (None when none was measured)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else round((vals[mid - 1] + vals[mid]) / 2, 3)


def spread_text(values):
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return ""
    return f" (runs: {', '.join(fmt(v) for v in vals)})"


def one_line(text, limit=240):
    """A reason fit for a table cell or a bullet: one line, bounded."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load(path):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        return {"failed": f"no report: {e}"}
    if "failed" in report:
        report["failed"] = one_line(report["failed"])
    return report


def git(*args):
    # In the checkout bench/ belongs to, wherever the script was started from.
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def pick(q, keys=("p50", "p95", "p99")):
    return {k: q[k] for k in keys} if q else None


def freshness(phase, rate_label):
    """Per-rate freshness summary of one phase report (or the reason it is missing)."""
    if "failed" in phase:
        return {"rate": rate_label, "failed": phase["failed"]}
    land = phase.get("landing") or {}
    return {
        "target_events_per_s": phase.get("target_events_per_s"),
        "achieved_events_per_s": phase.get("events_per_s"),
        "landed_ms": pick(land.get("freshness_landed_ms")),
        "landed_metric_le_ms": land.get("freshness_landed_metric_ms"),
        "derived_ms": pick(land.get("freshness_derived_ms")),
        "derived_metric_le_ms": land.get("freshness_derived_metric_ms"),
        "derived_note": land.get("derived_note"),
        "events": land.get("landed_events"),
    }


def cpu_use(w, name, phase, clk_tck):
    """CPU seconds each process spent during a phase (run + drain), and per event."""
    def read(path):
        try:
            return {k: int(v) for k, v in (line.split() for line in open(path))}
        except (OSError, ValueError):
            return {}
    before, after = read(w(name + ".cpu0")), read(w(name + ".cpu1"))
    secs = {k: round((after[k] - before.get(k, 0)) / clk_tck, 2) for k in after}
    try:
        user, system = open(w(name + ".loadcpu")).read().split()[-2:]
        secs["load generator"] = round(float(user) + float(system), 2)
    except (OSError, ValueError):
        pass
    events = phase.get("events_acknowledged") or 0
    return {
        "seconds": secs,
        "us_per_event": {k: round(v * 1e6 / events, 1) for k, v in secs.items()} if events else None,
    }


def miss(value, target, higher_is_better, unit=""):
    """(met, text) for one target."""
    if value is None:
        return None, "not measured"
    if higher_is_better:
        if value >= target:
            return True, "met"
        return False, f"missed by {100 * (1 - value / target):.0f}% ({fmt(value)}{unit} vs {fmt(target)}{unit})"
    if value <= target:
        return True, "met"
    return False, f"missed by {fmt(value - target)}{unit} ({value / target:.1f}x the target)"


def fmt(x):
    if x is None:
        return "n/a"
    if isinstance(x, float) and abs(x) < 100:
        return f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}"
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    for a in ("work", "results", "readme", "started-at", "load-before", "events-rows-before",
              "postgres-settings", "config", "brokers", "database-url", "clk-tck", "notes"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--allow-dirty", default="0")
    args = ap.parse_args()
    w = lambda name: os.path.join(args.work, name)
    ph = {n: load(w(n + ".json")) for n in ("broker", "ingest", "fresh", "nearsat", "api", "read")}
    # Repeated phases: the first run is "broker"/"ingest", later ones ".2", ...
    runs = {n: [ph[n]] + [load(w(f"{n}.{i}.json")) for i in range(2, args.repeats + 1)]
            for n in ("broker", "ingest")}
    notes = [n for n in args.notes.splitlines() if n.strip()]
    for n, p in ph.items():
        if "failed" in p:
            notes.append(f"phase {n} failed: {p['failed']}")
        notes.extend(f"{n}: {x}" for x in p.get("notes", []))

    spread = {
        "ingest_events_per_s": [p.get("events_per_s") for p in runs["ingest"]],
        "landed_events_per_s": [(p.get("landing") or {}).get("landed_events_per_s") for p in runs["ingest"]],
        "derived_events_per_s": [(p.get("landing") or {}).get("derived_events_per_s") for p in runs["ingest"]],
        "broker_limit_events_per_s": [p.get("events_per_s") for p in runs["broker"]],
    }
    ingest = median(spread["ingest_events_per_s"])
    landed = median(spread["landed_events_per_s"])
    derived = median(spread["derived_events_per_s"])
    broker = median(spread["broker_limit_events_per_s"])
    ratio = round(ingest / broker, 3) if ingest and broker else None

    # Headline freshness: derived rows at the moderate rate when the
    # processor ran, else landed rows (the stage is named).
    fresh = freshness(ph["fresh"], "fresh")
    stage = "derived" if fresh.get("derived_ms") else "landed"
    headline = fresh.get(f"{stage}_ms")
    if stage == "landed":
        notes.append("freshness_ms is API acceptance -> landed row: "
                     + (fresh.get("derived_note") or "derived rows were not measured"))

    api = ph["api"]
    api_q = api.get("latency_ms")
    api_target = api.get("target_requests_per_s")
    api_rate = api.get("requests_per_s")
    sustained = bool(api_rate and api_target and api_rate >= 0.95 * api_target and not api.get("requests_missed"))
    if api_q and not sustained:
        notes.append(f"the API latency phase did not sustain its target: {fmt(api_rate)} of {fmt(api_target)} req/s "
                     f"({api.get('requests_missed', 0)} requests missed); its latencies are those of an overloaded API")
    read = ph["read"]

    cluster_txt = open(w("cluster.txt")).read() if os.path.exists(w("cluster.txt")) else ""
    m = re.search(r"average GA ([\d.]+) over (\d+) datasets, ([\d.]+) msg/s on (\d+) messages", cluster_txt)
    cluster = {"msgs_per_s": float(m.group(3)), "average_ga": float(m.group(1)), "messages": int(m.group(4))} if m else None
    if not cluster:
        notes.append("cluster_msgs_per_s is null: `achilles cluster --eval` failed: "
                     + one_line(" / ".join(cluster_txt.strip().splitlines()[-3:])))

    attribution = load(w("attribution.json"))
    if "failed" in attribution:
        notes.append(f"attribution eval failed: {attribution['failed']}")
        attribution = None

    rss, rss_note = {}, []
    if os.path.exists(w("rss.txt")):
        for line in open(w("rss.txt")):
            name, hwm, sampled, before = line.split()
            rss[name] = round(int(hwm) / 1024, 1)
            if before == "1":
                rss_note.append(f"{name} ran before the benchmark: VmHWM covers its whole life; "
                                f"highest VmRSS sampled during the run {int(sampled) / 1024:.1f} MiB")
    services_rss = {k: v for k, v in rss.items() if k not in NOT_SERVICES}

    micro = {}
    if os.path.exists(w("micro-estimates.txt")):
        for line in open(w("micro-estimates.txt")):
            name, ns = line.split()
            micro[name] = round(float(ns) / 1000, 2)

    cpu = {n: cpu_use(w, n, p, int(args.clk_tck)) for n, p in ph.items()}

    checks = {
        "ingest_events_per_s": miss(ingest, TARGETS["ingest_events_per_s"], True, " events/s"),
        "landed_events_per_s": miss(landed, TARGETS["landed_events_per_s"], True, " events/s"),
        "derived_events_per_s": miss(derived, TARGETS["derived_events_per_s"], True, " events/s"),
        "ingest_to_broker_ratio": miss(ratio, TARGETS["ingest_to_broker_ratio"], True),
        "freshness_p95_ms": miss(headline and headline["p95"], TARGETS["freshness_p95_ms"], False, " ms"),
        "freshness_p99_ms": miss(headline and headline["p99"], TARGETS["freshness_p99_ms"], False, " ms"),
        "api_batch_p99_ms": miss(api_q and api_q["p99"], TARGETS["api_batch_p99_ms"], False, " ms"),
        "peak_rss_mib": miss(max(services_rss.values()) if services_rss else None, TARGETS["rss_mib"], False, " MiB"),
    }
    if checks["api_batch_p99_ms"][0] and not sustained:
        checks["api_batch_p99_ms"] = (False, f"rate not sustained ({fmt(api_rate)} of {fmt(api_target)} req/s)")
    for key in ("freshness_p95_ms", "freshness_p99_ms"):
        if checks[key][0] is not None and stage == "landed":
            met, text = checks[key]
            checks[key] = (met, text + " (landed rows; derived not measured)")

    def local(url):
        return bool(re.search(r"(127\.0\.0\.1|localhost|\[::1\])", url))

    now = datetime.now(timezone.utc)
    status = git("status", "--porcelain", "--untracked-files=no")
    result = {
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started_at": args.started_at,
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "cores": os.cpu_count(),
        "colocated": local(args.brokers) and local(args.database_url),
        "load_average_before": args.load_before,
        "postgres_settings": json.loads(args.postgres_settings or "{}"),
        "events_rows_before": None if args.events_rows_before == "null" else int(args.events_rows_before),
        "batch_size": json.loads(args.config)["batch_size"],
        "ingest_events_per_s": ingest,
        "landed_events_per_s": landed,
        "broker_limit_events_per_s": broker,
        "ingest_to_broker_ratio": ratio,
        # How fast the processor applied the ingest run's events (null: it
        # did not run, or had not caught up within the drain timeout).
        "derived_events_per_s": derived,
        # Every run of the repeated phases; the figures above are medians.
        "repeats": args.repeats,
        "runs": spread,
        "freshness_ms": dict(headline, stage=stage, rate_events_per_s=ph["fresh"].get("target_events_per_s")) if headline else None,
        "freshness_by_rate": {
            "moderate": fresh,
            "near_saturation": freshness(ph["nearsat"], "nearsat"),
            "saturation": freshness(ph["ingest"], "ingest"),
        },
        "api_batch_latency_ms": dict(pick(api_q), max=api_q["max"], target_requests_per_s=api_target,
                                     achieved_requests_per_s=api_rate, batch_size=api.get("batch_size"),
                                     sustained=sustained, errors=api.get("errors")) if api_q else None,
        "api_read_latency_ms": dict(pick(read["latency_ms"]), target_requests_per_s=read.get("target_requests_per_s"),
                                    achieved_requests_per_s=read.get("requests_per_s"),
                                    endpoints={k: pick(v) for k, v in read.get("endpoints", {}).items()},
                                    errors=read.get("errors")) if read.get("latency_ms") else None,
        "cluster_msgs_per_s": cluster and cluster["msgs_per_s"],
        "cluster": cluster,
        "attribution": attribution and {k: attribution.get(k) for k in (
            "correlation_precision", "correlation_recall", "break_fix_accuracy", "induced_mae",
            "sessions", "events", "true_pairs")},
        "peak_rss_mib": rss,
        "peak_rss_note": rss_note or None,
        "micro_benchmarks_us": micro or None,
        "cpu_seconds_by_phase": cpu,
        "targets": {k: {"met": met, "result": text} for k, (met, text) in checks.items()},
        "config": json.loads(args.config),
        "notes": notes,
        "phases": ph,
    }
    os.makedirs(args.results, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if result["dirty"] is not False and args.allow_dirty != "1":
        # Not the headline: the commit would not say what was measured.
        path = os.path.join(args.results, stamp + "-dirty.json")
        with open(path, "w") as f:
            f.write(text)
        print(f"the tree has uncommitted changes: wrote {path} only; latest.json and "
              f"{args.readme} keep the last clean run (BENCH_ALLOW_DIRTY=1 overrides)")
        return
    for name in ("latest.json", stamp + ".json"):
        with open(os.path.join(args.results, name), "w") as f:
            f.write(text)
    render_readme(args.readme, result, checks)
    print(json.dumps({k: result[k] for k in ("ingest_events_per_s", "landed_events_per_s",
                                                "broker_limit_events_per_s", "ingest_to_broker_ratio",
                                                "freshness_ms", "cluster_msgs_per_s", "peak_rss_mib")}, indent=2))
    print(f"wrote {os.path.join(args.results, 'latest.json')} and the table in {args.readme}")


def replace_block(text, name, body):
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    if start not in text or end not in text:
        return text + f"\n{start}\n{body}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def render_readme(path, r, checks):
    c = r["config"]
    f = r["freshness_ms"]
    api = r["api_batch_latency_ms"]
    rd = r["api_read_latency_ms"]
    q3 = lambda q: f"{fmt(q['p50'])} / {fmt(q['p95'])} / {fmt(q['p99'])}" if q else "n/a"
    status = lambda k: {True: "met", False: "**" + checks[k][1] + "**", None: "not measured"}[checks[k][0]]
    svc = {k: v for k, v in r["peak_rss_mib"].items() if k not in NOT_SERVICES}
    runs = r["runs"]
    rows = [
        ("Ingest, events/s acknowledged by the API",
         f"closed loop, {c['concurrency']} requests in flight, {c['batch_size']} events/batch, {c['ingest_seconds']} s",
         "≥ 50,000", fmt(r["ingest_events_per_s"]) + spread_text(runs["ingest_events_per_s"]), status("ingest_events_per_s")),
        ("Landed in Postgres, events/s", "rows of that run with `landed_at` inside its window",
         "≥ 30,000", fmt(r["landed_events_per_s"]) + spread_text(runs["landed_events_per_s"]), status("landed_events_per_s")),
        ("Derived by the processor, events/s", "that run's events over the time until the processor had applied them all",
         "≥ 30,000", fmt(r["derived_events_per_s"]) + spread_text(runs["derived_events_per_s"]), status("derived_events_per_s")),
        ("Raw broker limit, events/s", f"bare rdkafka producer, same records and settings, 3 consumer groups reading, {c['broker_seconds']} s",
         "—", fmt(r["broker_limit_events_per_s"]) + spread_text(runs["broker_limit_events_per_s"]), ""),
        ("Ingest / broker limit", "", "≥ 0.5", fmt(r["ingest_to_broker_ratio"]), status("ingest_to_broker_ratio")),
        (f"Freshness p50 / p95 / p99, ms ({f['stage'] if f else 'n/a'})",
         f"open loop at {fmt(c['freshness_rate_events_per_s'])} events/s, {c['phase_seconds']} s; per-event Postgres timestamps",
         "p95 ≤ 100, p99 ≤ 250", q3(f), status("freshness_p95_ms") + " / " + status("freshness_p99_ms")),
        ("`POST /v1/events/batch` p50 / p95 / p99, ms",
         f"open loop, {fmt(c['api_rate_requests_per_s'])} req/s target ({fmt(api and api['achieved_requests_per_s'])} achieved), "
         f"{c['api_batch_size']} event(s)/request; from the scheduled send time",
         "p99 ≤ 10", q3(api), status("api_batch_p99_ms")),
        ("Read endpoints p50 / p95 / p99, ms",
         f"open loop, {fmt(c['read_rate_requests_per_s'])} req/s target ({fmt(rd and rd['achieved_requests_per_s'])} achieved)",
         "—", q3(rd), ""),
        ("`achilles cluster`, messages/s (GA)", "`achilles cluster --eval` on the vendored LogHub samples", "—",
         fmt(r["cluster_msgs_per_s"]) + (f" (GA {r['cluster']['average_ga']})" if r.get("cluster") else ""), ""),
        ("Attribution precision / recall", "`achilles eval attribution` (labelled sessions of shared/eval; claims = confidence ≥ 0.5)",
         "≥ 0.95 / ≥ 0.95", (f"{r['attribution']['correlation_precision']} / {r['attribution']['correlation_recall']}"
                             if r.get("attribution") else "n/a"), ""),
        ("Peak RSS, MiB", "VmHWM per service: " + ", ".join(f"{k} {fmt(v)}" for k, v in svc.items()),
         "≤ 256 each", fmt(max(svc.values())) if svc else "n/a", status("peak_rss_mib")),
    ]
    lines = [
        f"Latest run: {r['timestamp']}, commit `{(r['commit'] or 'unknown')[:12]}`{' (dirty)' if r['dirty'] else ''}, "
        f"{r['cores']} cores, broker and Postgres co-located: {'yes' if r['colocated'] else 'no'}, "
        f"load average before: {r['load_average_before']}; capacity figures are the median of "
        f"{r['repeats']} runs. Postgres: "
        + (", ".join(f"{k} {v}" for k, v in sorted(r.get("postgres_settings", {}).items())) or "settings unknown")
        + " (`make tune-postgres`).",
        "",
        "| Figure | How | Target | Latest | Status |",
        "|---|---|---|---|---|",
    ] + [f"| {a} | {b} | {t} | {v} | {s} |" for a, b, t, v, s in rows]
    mod = r["freshness_by_rate"]
    lines += ["", "Freshness by rate (p50 / p95 / p99, ms; landed = API acceptance → raw row committed, "
              "derived = → session summary visible):", "",
              "| Rate | events/s achieved | landed | derived |", "|---|---|---|---|"]
    for label, key in (("moderate", "moderate"), ("near saturation", "near_saturation"), ("saturation (ingest run)", "saturation")):
        m = mod[key]
        target = m.get("target_events_per_s")
        lines.append(f"| {label} ({fmt(target) if target else ('max' if key == 'saturation' else 'n/a')}) "
                     f"| {fmt(m.get('achieved_events_per_s'))} | {q3(m.get('landed_ms'))} | "
                     f"{q3(m.get('derived_ms')) if m.get('derived_ms') else 'n/a: ' + (m.get('derived_note') or m.get('failed') or '')} |")
    ing = r["cpu_seconds_by_phase"].get("ingest") or {}
    if ing.get("us_per_event"):
        lines += ["", "CPU time per acknowledged event in the ingest run (run + drain; µs, all cores):", "",
                  "| " + " | ".join(ing["us_per_event"]) + " |", "|" + "---|" * len(ing["us_per_event"]),
                  "| " + " | ".join(fmt(v) for v in ing["us_per_event"].values()) + " |"]
    if r["notes"]:
        lines += ["", "Notes:", ""] + [f"- {one_line(n, 400)}" for n in r["notes"]]
    micro = r["micro_benchmarks_us"]
    mlines = ["| Benchmark | median, µs |", "|---|---|"] + [f"| `{k}` | {v} |" for k, v in sorted((micro or {}).items())]
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    text = replace_block(text, "results", "\n".join(lines))
    # Without a fresh micro run (BENCH_MICRO=0), the previous figures stay.
    if micro:
        text = replace_block(text, "micro", "\n".join(mlines))
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
