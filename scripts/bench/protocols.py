#!/usr/bin/env python3
"""The protocols benchmark of scripts/bench.sh: each HTTP prediction protocol's throughput at 64
connections as a share of `/healthz` on the same server, measured in alternating runs (healthz,
then every protocol, repeated), so that the machine's drift affects both sides of each ratio.
Every request predicts two values, as the original's example body does. Writes protocols.json
and protocols.md (the BENCHMARKS.md section) into the results directory.

Usage: protocols.py BINARY DATA_DIR WRK RESULTS [--quick]
  DATA_DIR holds a trained one-feature model (Income1); it is served as it is.
"""

import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cluster import Processes, free_port, wait_until, wrk

# Route, body (empty: GET) and the label of each measured protocol, in the order they run.
PROTOCOLS = [
    ("flask", "/predict", '{"x_predict":[10,15.5]}', "Flask `POST /predict`"),
    ("kserve", "/v2/models/regserve/infer",
     '{"inputs":[{"name":"x","shape":[2,1],"datatype":"FP64","data":[10,15.5]}]}', "KServe v2 `infer` (JSON)"),
    ("tf_serving", "/v1/models/regserve:predict", '{"instances":[[10],[15.5]]}', "TF Serving `:predict`"),
    ("mlflow", "/invocations", '{"dataframe_split":{"columns":["Education"],"data":[[10],[15.5]]}}',
     "MLflow `/invocations`"),
]
GOAL = 0.70


def check_answers(base):
    """Every measured body is answered 200, so the runs measure predictions, not errors."""
    for name, path, body, _ in PROTOCOLS:
        request = urllib.request.Request(base + path, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                sys.exit(f"protocols.py: {name} answered {response.status}")


def main():
    binary, data_dir, wrk_binary, results = sys.argv[1:5]
    quick = "--quick" in sys.argv
    seconds, pairs = (2, 1) if quick else (5, 3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    scratch = tempfile.mkdtemp(prefix="regserve-protocols-")
    processes = Processes(scratch)
    processes.spawn([binary, "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir], log="server")
    try:
        wait_until(lambda: urllib.request.urlopen(base + "/readyz", timeout=1).status == 200, "the server")
        check_answers(base)
        for _, path, body, _ in PROTOCOLS:
            wrk(wrk_binary, base + path, 1, 16, body)
        rounds = []
        for _ in range(pairs):
            run = {"healthz": wrk(wrk_binary, base + "/healthz", seconds, 64, "")}
            for name, path, body, _ in PROTOCOLS:
                run[name] = wrk(wrk_binary, base + path, seconds, 64, body)
            rounds.append(run)
            time.sleep(0.5)
    finally:
        processes.stop()
    result = {"rounds": rounds, "seconds": seconds, "connections": 64}
    (Path(results) / "protocols.json").write_text(json.dumps(result, indent=1))
    (Path(results) / "protocols.md").write_text(markdown(result))
    for name, _, _, _ in PROTOCOLS:
        print(f"    {name:<12} {ratio(rounds, name):.0%} of /healthz "
              f"({statistics.median(r[name]['rate'] for r in rounds):,.0f} req/s)")


def ratio(rounds, name):
    """The median, over the rounds, of the protocol's rate over that round's /healthz rate."""
    return statistics.median(r[name]["rate"] / r["healthz"]["rate"] for r in rounds)


def markdown(result):
    rounds = result["rounds"]
    healthz = statistics.median(r["healthz"]["rate"] for r in rounds)
    lines = [
        "### Prediction protocols over HTTP",
        "",
        f"wrk at {result['connections']} connections, {result['seconds']} s a run, {len(rounds)} round(s) of "
        "`/healthz` followed by each protocol in turn (server and wrk share both cores); each request predicts "
        "two values. The ratio is the median over the rounds of the protocol's rate over the same round's "
        f"`/healthz` rate (median `/healthz`: {healthz:,.0f} req/s).",
        "",
        "| protocol | req/s (median) | p99 (median) | / `/healthz` | goal | |",
        "|---|---|---|---|---|---|",
    ]
    for name, _, _, label in PROTOCOLS:
        rate = statistics.median(r[name]["rate"] for r in rounds)
        p99 = statistics.median(r[name]["p99_ms"] for r in rounds)
        share = ratio(rounds, name)
        errors = " (non-2xx answers!)" if any(r[name]["non2xx"] for r in rounds) else ""
        verdict = "met" if share >= GOAL and not errors else "missed"
        lines.append(f"| {label} | {rate:,.0f}{errors} | {p99:.2f} ms | {share:.0%} | ≥ {GOAL:.0%} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
