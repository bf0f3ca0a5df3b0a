#!/usr/bin/env python3
"""A small, bounded workload that touches every metric the running services
can produce, for scripts/check-dashboards.sh (run after scripts/demo.sh, which
sends one realistic session through the CLI).

    scripts/workload.py [--rounds N] [--no-intake]

Over HTTP (ACHILLES_API_URL, ACHILLES_API_KEY; standard library only), per round:
start a session, send a batch with valid events, one invalid event (a rejection
with a reason) and the same batch again (duplicates), read the session and its
events, make the API answer 401, 404 and 400, end the session.

Straight to Kafka (ACHILLES_KAFKA__BROKERS, ACHILLES_KAFKA__TOPIC_PREFIX), when the
`confluent_kafka` module can be imported (check-dashboards.sh installs it into
.stack/pykafka): a valid session on the intake topic, with the `x-api-key`
header, for the intake gate to republish, plus records it must dead-letter
(no key, malformed JSON, an unknown field).

Every request goes to the loopback stack; the loop is bounded (--rounds, 2 by
default) and the script stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

API = os.environ.get("ACHILLES_API_URL", "http://127.0.0.1:8080").rstrip("/")
KEY = os.environ.get("ACHILLES_API_KEY") or os.environ.get("ACHILLES_DEV_API_KEY") or "achilles-dev-key"


def call(method, path, body=None, key=KEY, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(API + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, None


def ts(offset_s=0.0):
    t = datetime.now(timezone.utc) - timedelta(seconds=30) + timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def events(run):
    return [
        {"occurred_at": ts(0), "kind": "user_message", "data": {"text": f"workload round {run}: fix the flaky test"}},
        {"occurred_at": ts(1), "kind": "file_edit", "actor": "agent",
         "data": {"path": "src/lib.rs", "lines_added": 4, "lines_removed": 1, "operation": "modify"}},
        {"occurred_at": ts(2), "kind": "command", "actor": "agent",
         "data": {"command": "cargo test", "exit_code": 101, "duration_ms": 5100,
                  "output": "thread 'parse' panicked at src/lib.rs:42: index out of bounds"}},
        {"occurred_at": ts(3), "kind": "error", "actor": "agent",
         "data": {"message": "index out of bounds: the len is 3 but the index is 7", "error_type": "panic",
                  "file": "src/lib.rs", "line": 42}},
        {"occurred_at": ts(4), "kind": "llm_call", "actor": "agent",
         "data": {"provider": "anthropic", "model": "claude-sonnet", "input_tokens": 1200, "output_tokens": 300,
                  "cost_usd": 0.006, "latency_ms": 2100, "status": "ok"}},
        {"occurred_at": ts(5), "kind": "test_run", "actor": "agent",
         "data": {"framework": "cargo", "passed": 41, "failed": 0, "skipped": 1, "duration_ms": 7300}},
    ]


def http_round(run):
    results = []

    def expect(what, status, want):
        results.append((what, status, status in want))

    status, body = call("POST", "/v1/sessions/start",
                        {"agent_name": "workload-agent", "agent_model": "workload-model", "source": "sdk"})
    expect("session start", status, {202})
    if status != 202:
        return results
    sid = body["session_id"]
    batch = events(run)
    invalid = {"occurred_at": ts(6), "kind": "command", "data": {"command": "ls", "exit_code": "zero"}}
    status, _ = call("POST", "/v1/events/batch", {"session_id": sid, "events": batch + [invalid]})
    expect("batch (valid + one invalid)", status, {202})
    status, _ = call("POST", "/v1/events/batch", {"session_id": sid, "events": batch})
    expect("same batch again (duplicates)", status, {202})
    status, _ = call("POST", "/v1/events/batch", {"session_id": sid, "events": [invalid]})
    expect("only invalid events", status, {422})
    status, _ = call("GET", f"/v1/sessions/{sid}")
    expect("read session", status, {200, 404})  # 404 until the raw sink landed it
    status, _ = call("GET", f"/v1/sessions/{sid}/events?limit=5")
    expect("read events", status, {200, 404})
    status, _ = call("GET", f"/v1/sessions/{sid}", key=None)
    expect("no API key", status, {401})
    status, _ = call("GET", f"/v1/sessions/{uuid.uuid4()}")
    expect("unknown session", status, {404})
    status, _ = call("POST", "/v1/events/batch", raw=b"{not json")
    expect("malformed JSON", status, {400})
    status, _ = call("POST", "/v1/sessions/end", {"session_id": sid, "status": "completed"})
    expect("session end", status, {202})
    return results


def intake_round(run, producer, topic):
    sid = str(uuid.uuid4())
    key_header = [("x-api-key", KEY.encode())]
    good = [{"session_start": {"id": sid, "agent_name": "intake-agent", "agent_model": "intake-model",
                               "source": "other", "started_at": ts(-1)}}]
    good += [{"event": dict(e, session_id=sid)} for e in events(run)]
    good += [{"session_end": {"session_id": sid, "status": "failed", "ended_at": ts(7)}}]
    for rec in good:
        producer.produce(topic, key=sid, value=json.dumps(rec).encode(), headers=key_header)
    # Records the gate must dead-letter, each for another reason.
    producer.produce(topic, key=sid, value=json.dumps(good[1]).encode())  # no x-api-key
    producer.produce(topic, key=sid, value=b'{"event": ', headers=key_header)  # malformed JSON
    producer.produce(topic, key=sid, value=json.dumps({"event": dict(events(run)[0], session_id=sid, colour="blue")}).encode(),
                     headers=key_header)  # unknown field
    left = producer.flush(15)
    if left:
        raise RuntimeError(f"{left} intake records were not acknowledged within 15 s")
    return len(good), 3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between rounds")
    ap.add_argument("--no-intake", action="store_true", help="skip the direct-to-Kafka part")
    args = ap.parse_args()

    producer = topic = None
    if not args.no_intake:
        try:
            from confluent_kafka import Producer  # noqa: PLC0415 (optional dependency)
        except ImportError:
            print("workload: confluent_kafka not importable: skipping the intake topic", file=sys.stderr)
        else:
            producer = Producer({"bootstrap.servers": os.environ.get("ACHILLES_KAFKA__BROKERS", "127.0.0.1:9092"),
                                 "acks": "all", "enable.idempotence": True,
                                 "client.id": "achilles-workload"})
            topic = os.environ.get("ACHILLES_KAFKA__TOPIC_PREFIX", "") + "achilles.intake.v1"

    failed = 0
    for run in range(1, args.rounds + 1):
        for what, status, ok in http_round(run):
            failed += not ok
            print(f"  round {run}  HTTP {status}  {what}" + ("" if ok else "   <-- unexpected"))
        if producer is not None:
            good, bad = intake_round(run, producer, topic)
            print(f"  round {run}  intake: {good} valid records and {bad} to be dead-lettered on {topic}")
        if run < args.rounds:
            time.sleep(args.pause)
    if failed:
        print(f"workload: {failed} unexpected answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
