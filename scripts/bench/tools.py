#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (standard library only).

  ready BIN TEMPLATE_DIR RUNS PORT      start-up to the first 200 from /readyz, RUNS times
  rss-watch PID STOP_FILE               peak VmRSS of PID, sampled every 5 ms until STOP_FILE exists
  status PID                            VmRSS and VmHWM of PID in KiB, as JSON
  stats                                 min / median / max of the numbers on stdin, as JSON
  get KEY                               a top-level field of the JSON object on stdin
  bench-exe NAME                        the executable of bench target NAME from cargo's JSON messages on stdin
  perf-table DSO SYM RATE SECONDS HZ N  perf report -n rows (by dso, by symbol) as CPU time per request
  strace-sum FILE CALLS                 time per call in FILE (strace -T output) split by syscall, per CALLS requests
  fit BASE BODY LIMIT                   time one POST /train?wait=true with BODY; past LIMIT seconds, cancel it
  history-sizes BASE JOB                size of job JOB and of the served model, loss history sampled and full
  criterion TARGET_DIR SINCE            estimates of every criterion benchmark written after SINCE (epoch s)
  render RESULTS_DIR BENCHMARKS_MD      regenerate the figures between the markers of BENCHMARKS_MD
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BEGIN = "<!-- figures:begin -->"
END = "<!-- figures:end -->"


# ---------------------------------------------------------------------------------------------
# Measuring


def proc_status(pid):
    """VmRSS and VmHWM of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return {"rss_kb": fields.get("VmRSS"), "hwm_kb": fields.get("VmHWM")}


def readyz_status(port):
    """The status code of GET /readyz, or None while nothing accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n" not in head:
                chunk = conn.recv(256)
                if not chunk:
                    return None
                head += chunk
            return int(head.split(b" ", 2)[1])
    except (ConnectionRefusedError, ConnectionResetError):
        return None


def cmd_ready(binary, template, runs, port):
    """Spawns the server on a copy of TEMPLATE (a data directory holding a trained model) and
    times spawn -> first 200 from /readyz, polling every 0.2 ms. Prints the times in ms and the
    VmRSS at that moment."""
    runs, port = int(runs), int(port)
    times, rss = [], []
    scratch = Path(tempfile.mkdtemp(prefix="regserve-ready-"))
    try:
        for run in range(runs):
            data = scratch / f"data-{run}"
            shutil.copytree(template, data)
            start = time.perf_counter()
            server = subprocess.Popen(
                [binary, "--addr", f"127.0.0.1:{port}", "--data-dir", str(data)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    code = readyz_status(port)
                    if code == 200:
                        elapsed = time.perf_counter() - start
                        break
                    if server.poll() is not None:
                        sys.exit(f"ready: the server exited with {server.returncode} before it was ready")
                    if time.perf_counter() - start > 30:
                        sys.exit(f"ready: no 200 from /readyz within 30 s (last answer: {code})")
                    time.sleep(0.0002)
                times.append(elapsed * 1000)
                rss.append(proc_status(server.pid)["rss_kb"])
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            shutil.rmtree(data, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"runs": runs, "ms": times, "rss_kb": rss}))


def cmd_rss_watch(pid, stop_file):
    """Samples VmRSS every 5 ms until STOP_FILE appears or the process ends."""
    peak, samples, timeline = 0, 0, []
    start = time.monotonic()
    while not os.path.exists(stop_file):
        try:
            rss = proc_status(pid)["rss_kb"] or 0
        except (FileNotFoundError, ProcessLookupError):
            break
        samples += 1
        peak = max(peak, rss)
        now = time.monotonic() - start
        if not timeline or now - timeline[-1][0] >= 0.5:
            timeline.append([round(now, 2), rss])
        time.sleep(0.005)
    print(json.dumps({"max_rss_kb": peak, "samples": samples, "timeline": timeline}))


def cmd_status(pid):
    print(json.dumps(proc_status(pid)))


def summary(values):
    values = sorted(values)
    return {
        "n": len(values),
        "min": values[0],
        "median": statistics.median(values),
        "max": values[-1],
    }


def cmd_stats():
    print(json.dumps(summary([float(word) for word in sys.stdin.read().split()])))


def cmd_get(key):
    value = json.load(sys.stdin)[key]
    print(value if not isinstance(value, (dict, list)) else json.dumps(value))


def cmd_bench_exe(name):
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        target = message.get("target") or {}
        if message.get("reason") == "compiler-artifact" and target.get("name") == name and message.get("executable"):
            if "bench" in target.get("kind", []):
                print(message["executable"])
                return
    sys.exit(f"bench-exe: no executable for bench target {name}")


def cmd_perf_table(dso_file, sym_file, req_rate, seconds, hz, top):
    """Turns `perf report -n` rows (sorted by dso, and by dso,symbol) of a server profiled for
    SECONDS at HZ while it served REQ_RATE requests per second into CPU time per request."""
    requests = float(req_rate) * float(seconds)
    per_sample_us = 1e6 / float(hz)
    row = re.compile(r"^\s*([0-9.]+)%\s+(\d+)\s+(.*)$")
    dso_rows = [m.groups() for m in map(row.match, Path(dso_file).read_text().splitlines()) if m]
    total = sum(int(samples) for _, samples, _ in dso_rows)
    out = [
        f"# {total} samples over {float(seconds):g} s at {float(hz):g} Hz while serving {float(req_rate):,.0f} req/s: "
        f"about {total * per_sample_us / requests:.1f} µs of server CPU per request",
        "",
        "# by binary: share, µs per request",
    ]
    for share, samples, name in dso_rows[:6]:
        out.append(f"{float(share):6.2f}%  {int(samples) * per_sample_us / requests:6.2f} µs  {name.strip()}")
    out += ["", "# top symbols (self time): share, µs per request"]
    for share, samples, name in [m.groups() for m in map(row.match, Path(sym_file).read_text().splitlines()) if m][: int(top)]:
        name = re.sub(r"\s+", " ", name.strip())
        if len(name) > 140:
            name = name[:137] + "..."
        out.append(f"{float(share):6.2f}%  {int(samples) * per_sample_us / requests:6.2f} µs  {name}")
    print("\n".join(out))


def cmd_strace_sum(path, calls):
    """Sums the time strace -T reports per syscall name (`123 fsync(9) = 0 <0.004>` lines)."""
    line = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(\w+)\(.*<([0-9.]+)>\s*$")
    total, count = {}, {}
    for text in Path(path).read_text().splitlines():
        match = line.match(text)
        if match:
            name, seconds = match.group(1), float(match.group(2))
            total[name] = total.get(name, 0.0) + seconds
            count[name] = count.get(name, 0) + 1
    calls = int(calls)
    print(json.dumps({
        "requests": calls,
        "calls_per_request": {name: n / calls for name, n in sorted(count.items())},
        "ms_per_request": {name: total[name] * 1000 / calls for name in sorted(total)},
    }))


def http(method, url, body=None, timeout=30.0):
    """(status, body bytes) of one request; error statuses are returned, not raised."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def cmd_fit(base, body, limit):
    """Times POST /train?wait=true with BODY. A fit still running after LIMIT seconds is cancelled
    and reported with the epochs it had done."""
    limit = float(limit)
    start = time.perf_counter()
    try:
        status, data = http("POST", f"{base}/train?wait=true", body.encode(), timeout=limit)
    except (TimeoutError, urllib.error.URLError) as error:
        if isinstance(error, urllib.error.URLError) and not isinstance(error.reason, TimeoutError):
            raise
        seconds = time.perf_counter() - start
        _, data = http("GET", f"{base}/v1/jobs")
        running = [job for job in json.loads(data) if job["state"] in ("queued", "running")]
        if not running:
            sys.exit("fit: the request timed out, but no job is running")
        _, data = http("DELETE", f"{base}/v1/jobs/{running[0]['id']}")
        job = json.loads(data)
        print(json.dumps({"finished": False, "seconds": seconds, "limit_s": limit, "epoch": job["epoch"],
                          "epochs": job["epochs"], "job_ms": job["elapsed_ms"]}))
        return
    seconds = time.perf_counter() - start
    if status != 200:
        sys.exit(f"fit: /train?wait=true answered {status}: {data[:300]!r}")
    answer = json.loads(data)
    job = answer["job"]
    print(json.dumps({"finished": True, "seconds": seconds, "epoch": job["epoch"], "epochs": job["epochs"],
                      "job_ms": job["elapsed_ms"], "fit_ms": answer["model"]["duration_ms"]}))


def cmd_history_sizes(base, job):
    """Bytes, loss points and time of the job's and the model's answers, sampled and full."""
    out = {}
    for name, path in (("job", f"/v1/jobs/{job}"), ("job_full", f"/v1/jobs/{job}?history=full"),
                       ("model", "/v1/model"), ("model_full", "/v1/model?history=full")):
        start = time.perf_counter()
        status, data = http("GET", base + path, timeout=120)
        elapsed = time.perf_counter() - start
        points = len(json.loads(data)["history"]["loss"]) if status == 200 else None
        out[name] = {"path": path, "status": status, "bytes": len(data), "points": points, "ms": elapsed * 1000}
    print(json.dumps(out))


def cmd_criterion(target_dir, since):
    """Every benchmark whose estimates were written after SINCE: median and mean in ns, the
    median's 95% interval, and the declared throughput."""
    since = float(since)
    found = {}
    root = Path(target_dir) / "criterion"
    for estimates in root.glob("**/new/estimates.json"):
        if estimates.stat().st_mtime < since:
            continue
        meta = json.loads((estimates.parent / "benchmark.json").read_text())
        data = json.loads(estimates.read_text())
        found[meta["full_id"]] = {
            "median_ns": data["median"]["point_estimate"],
            "median_ci_ns": [
                data["median"]["confidence_interval"]["lower_bound"],
                data["median"]["confidence_interval"]["upper_bound"],
            ],
            "mean_ns": data["mean"]["point_estimate"],
            "throughput": meta.get("throughput"),
        }
    print(json.dumps(found, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Rendering


def load(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return default


def kv(results):
    values = {}
    path = Path(results) / "kv.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("\t")
            values[key] = value
    return values


def ms(us):
    return f"{us / 1000:.2f} ms"


def fmt_ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def intake_targets(r, add):
    """The appending issue's targets, from intake.json (scripts/bench/intake.py)."""
    if not r:
        return
    for name, label in (("http", "HTTP `POST /v1/data`, batches of 10,000 one-feature rows, 4 clients"),
                        ("websocket", "WebSocket, frames of 10,000 one-feature rows, 2 connections")):
        local, s3 = r["local"][name]["rows_per_second"], r["s3"][name]["rows_per_second"]
        add(f"| {label}, durable (local store; S3 beside it) | ≥ 1M rows/s | {local / 1e6:.2f}M rows/s (S3 {s3 / 1e6:.2f}M) | "
            f"{verdict(local >= 1e6)} |")
    for m in r["mqtt"]:
        ratio = m["intake_rows_per_second"] / m["broker_rows_per_second"]
        add(f"| MQTT QoS 1 intake / mosquitto to a plain QoS 1 subscriber, messages of {m['rows_per_message']} row(s), median of 3 | ≥ 80% | "
            f"{ratio:.0%} ({m['intake_rows_per_second']:,.0f} vs {m['broker_rows_per_second']:,.0f} rows/s) | "
            f"{verdict(ratio >= 0.80)} |")
    big = r["big"]
    numeric = big["rows"] * big["columns"] * 8
    peak = big["peak_rss_kib"] * 1024
    add(f"| peak RSS while {big['rows']:,} rows arrive | ≤ their numbers ({numeric / 1e6:,.0f} MB) + 64 MB | "
        f"{peak / 1e6:,.0f} MB ({(peak - numeric) / 1e6:+,.0f} MB) | {verdict(peak <= numeric + 64e6)} |")
    exact = sorted(big["exact"], key=lambda e: e["request_ms"])
    median = exact[len(exact) // 2]
    add(f"| `least-squares` after {big['rows']:,} appended rows: the fit (median of 5; the whole request, model stored "
        f"with fsync, beside it) | < 10 ms | {median['fit_ms']:.3f} ms ({median['request_ms']:.1f} ms) | "
        f"{verdict(median['fit_ms'] < 10)} |")
    agreement = abs(median["mse"] - big["optimum_over_rows"]) / big["optimum_over_rows"]
    add(f"| its MSE against the optimum of a pass over the rows | ≤ 1e-9 relative | {agreement:.1e} | {verdict(agreement <= 1e-9)} |")


def streams_targets(ws, add):
    """The streaming issue's target, from streams_ws.json (examples/predict_ws.rs)."""
    if not ws:
        return
    rate = ws["binary_predictions_per_second"]
    add(f"| WebSocket binary predictions/s (65,536-row frames, {ws['in_flight']} in flight) | ≥ 10,000,000 | "
        f"{rate:,.0f} | {verdict(rate >= 10_000_000)} |")


def streams_section(ws, mqtt, add):
    """The streaming predictions' figures: examples/predict_ws.rs and examples/predict_mqtt.rs."""
    if not ws and not mqtt:
        return
    add("### Streaming predictions")
    add("")
    add("One client on loopback, sharing the two cores with the server. WebSocket: `examples/predict_ws.rs`, frames "
        "pipelined (the next sent as each answer arrives). MQTT: `examples/predict_mqtt.rs` against mosquitto "
        "(`scripts/brokers.sh`, `set_tcp_nodelay true`), QoS 1 both ways; the baseline publishes to a topic the "
        "client itself subscribes to.")
    add("")
    add("| figure | measured |")
    add("|---|---|")
    if ws:
        add(f"| WebSocket binary predictions/s (65,536-row frames) | {ws['binary_predictions_per_second']:,.0f} |")
        add(f"| WebSocket JSON predictions/s ({ws['json_rows_per_frame']:,}-row frames) | "
            f"{ws['json_predictions_per_second']:,.0f} |")
    if mqtt:
        for suffix, label in (("", "1 in flight"), ("_in_flight", f"{mqtt['in_flight']} in flight")):
            served = mqtt[f"regserve_round_trips_per_second{suffix}"]
            broker = mqtt[f"broker_round_trips_per_second{suffix}"]
            add(f"| MQTT prediction round trips/s ({label}) | {served:,.0f} |")
            add(f"| mosquitto round trips/s ({label}) | {broker:,.0f} |")
            add(f"| MQTT prediction / mosquitto round trips ({label}) | {served / broker:.0%} |")
    add("")


def verdict(ok):
    if ok is None:
        return "not measured"
    return "pass" if ok else "**miss**"


def rate(run):
    return run["requests"] / (run["duration_us"] / 1e6)


def errors(run):
    e = run["errors"]
    total = sum(e.values())
    return "" if total == 0 else " (errors: " + ", ".join(f"{k} {v}" for k, v in e.items() if v) + ")"


# bytes each algorithm reads per row of a one-feature (f = 1) or f-feature dataset, counted from
# the source: an epoch in file order reads x and y once; least squares reads x (mean), y (mean),
# x and y twice (cross products, then the refinement's residual cross products) and once more for
# the MSE.
def epoch_bytes(features):
    return 8 * (features + 1)


def least_squares_bytes(features):
    """Two passes over the features and the target: the moments, then the refinement."""
    return 2 * epoch_bytes(features)


def wrk_runs(res, name):
    """One wrk result, or the medians of the alternating runs NAME-p1, NAME-p2, ... as one result
    of the same shape (the request rate as requests per one-second duration)."""
    single = load(res / "wrk" / f"{name}.json")
    if single:
        return single
    runs = [load(path) for path in sorted((res / "wrk").glob(f"{name}-p*.json"))]
    runs = [run for run in runs if run]
    if not runs:
        return None
    errors_sum = {key: sum(run["errors"][key] for run in runs) for key in runs[0]["errors"]}
    return {
        "requests": statistics.median(rate(run) for run in runs),
        "duration_us": 1e6,
        "errors": errors_sum,
        "latency_us": {key: statistics.median(run["latency_us"][key] for run in runs) for key in runs[0]["latency_us"]},
        "runs": len(runs),
    }


def pair_ratios(res, mode, connections):
    """predict/healthz request-rate ratios of each alternating pair."""
    ratios = []
    pair = 1
    while True:
        p = load(res / "wrk" / f"{mode}-predict-c{connections}-p{pair}.json")
        h = load(res / "wrk" / f"{mode}-healthz-c{connections}-p{pair}.json")
        if not (p and h):
            break
        ratios.append(rate(p) / rate(h))
        pair += 1
    if not ratios:
        p = load(res / "wrk" / f"{mode}-predict-c{connections}.json")
        h = load(res / "wrk" / f"{mode}-healthz-c{connections}.json")
        if p and h:
            ratios.append(rate(p) / rate(h))
    return ratios


def ratio_text(ratios):
    median = statistics.median(ratios)
    if len(ratios) == 1:
        return median, f"{median:.0%}"
    return median, f"{median:.0%} (pairs: {', '.join(f'{r:.0%}' for r in ratios)})"


def training_rounds(res):
    rounds = []
    number = 1
    while (res / "wrk" / f"training-r{number}-idle.json").exists():
        idle = load(res / "wrk" / f"training-r{number}-idle.json")
        busy = load(res / "wrk" / f"training-r{number}-busy.json")
        if idle and busy:
            rounds.append((idle, busy))
        number += 1
    return rounds


def answered(run):
    """Whether a wrk run got answers, with at most 1% of its requests in error."""
    return bool(run) and run["requests"] > 0 and sum(run["errors"].values()) <= 0.01 * run["requests"]


def hostile_runs(res):
    """The hostile step's wrk runs by route: (quiet, with the training, with the connections held)."""
    runs = {}
    for route in ("predict", "healthz"):
        found = [load(res / "wrk" / f"hostile-{state}-{route}.json") for state in ("quiet", "training", "held")]
        if found[2]:
            runs[route] = found
    return runs


def fit_runs(res):
    """The priority step's fits: {priority: (alone, beside the busy processes)}, in run order."""
    fits = {}
    for priority in ("adaptive", "idle", "10"):
        alone, busy = load(res / f"fit-{priority}-alone.json"), load(res / f"fit-{priority}-busy.json")
        if alone and busy:
            fits[priority] = (alone, busy)
    return fits


def fit_time(fit):
    if fit["finished"]:
        return f"{fit['seconds']:.2f} s"
    pace = ""
    if fit["epoch"] > 0:
        pace = f"; about {fit['seconds'] * fit['epochs'] / fit['epoch']:,.0f} s at that pace"
    return f"over {fit['limit_s']:.0f} s (cancelled after {fit['epoch']:,} of {fit['epochs']:,} epochs{pace})"


def fit_ratio(alone, busy):
    """(ratio, text): a lower bound with "over" when the busy fit was cancelled."""
    ratio = busy["seconds"] / alone["seconds"]
    return ratio, (f"{ratio:.1f}x" if busy["finished"] else f"over {ratio:.0f}x")


def priority_name(priority):
    return {"adaptive": "`adaptive`", "idle": "`idle` (`SCHED_IDLE`)", "10": "`10` (nice 10)"}.get(priority, priority)


UPLOAD_SHAPES = ("wide", "line", "line-fields", "line-quoted", "lines-x4")


def size_text(n):
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 1e6:.0f} MB"


def shape_label(name, r):
    size = size_text(r["file_bytes"])
    return {
        "wide": f"a {size} CSV of {r['columns']} numeric columns ({r['rows']:,} rows)",
        "line": f"one line of {size}: a single value, no newline",
        "line-fields": f"a header, then one line of {size} of short fields (`1,1,1,...`)",
        "line-quoted": f"a header, then a quoted value of {size} that never closes",
        "lines-x4": f"{r['count']} files at once, each one line of {size} (a single value)",
    }.get(name, name)


def upload_ok(r):
    """Whether every upload of a shape got the answer it should: 200 for data, 422 for the single lines."""
    expected = 200 if r["numeric_bytes"] else 422
    return all(u.get("status") == expected for u in r["uploads"])


def drop_if_empty(lines, mark, header_lines):
    """Removes a section that got no more than its HEADER_LINES heading and table-head lines (and a
    closing blank line) since MARK."""
    if len(lines) - mark <= header_lines + 1:
        del lines[mark:]


def render(results, markdown):
    res = Path(results)
    meta = kv(results)
    lines = []
    add = lines.append
    wrk = lambda name: wrk_runs(res, name)  # noqa: E731
    crit = load(res / "criterion.json", {})
    membw_runs = [load(path) for path in sorted(res.glob("membw*.json"))]
    membw_runs = [run for run in membw_runs if run]
    membw = max(membw_runs, key=lambda run: run["read_gbs_best"]) if membw_runs else None
    startup = load(res / "startup.json")
    train_wait = load(res / "train_wait.json")
    healthz_curl = load(res / "healthz_curl.json")
    upload = load(res / "upload_1g.json")
    syscalls = load(res / "train_syscalls.json")
    conns = [int(c) for c in meta.get("connections", "1 16 64").split()]
    mb = 1e6

    add(f"Measured on {meta.get('date', '?')} at commit `{meta.get('commit', '?')}`"
        + (" (with uncommitted changes to the measured sources)" if meta.get("dirty") == "yes" else "")
        + f"; the whole `scripts/bench.sh` run took {meta.get('elapsed', '?')}.")
    add("")
    add(f"Machine: {meta.get('nproc', '?')} cores, {meta.get('cpu', '?')} ({meta.get('virt', 'bare metal')}), "
        f"{meta.get('mem', '?')} RAM, Linux {meta.get('kernel', '?')}, {meta.get('os', '?')}; "
        f"{meta.get('rustc', '?')}; {meta.get('wrk', 'wrk ?')}. "
        f"Load average before the run: {meta.get('load_before', '?')}, after: {meta.get('load_after', '?')}.")
    add("")
    add("Units: MB = 10^6 bytes, MiB = 2^20 bytes; memory targets are judged in MB, the stricter reading.")
    add("")
    if meta.get("quick") == "yes":
        add("A short trial run (`scripts/bench.sh --quick`: 2 s wrk runs, few repetitions, small files); "
            "these figures are not comparable with a full run's.")
        add("")
    if meta.get("steps"):
        add(f"Only these steps ran (`scripts/bench.sh --only {meta['steps']}`); the figures of the others are left out.")
        add("")

    # --- targets -------------------------------------------------------------------------
    add("### Targets")
    add("")
    add("| figure | target | measured | result |")
    add("|---|---|---|---|")
    for mode, label in (("shared", "wrk and server share both cores"), ("pinned", "server on core 0, wrk on core 1")):
        p, h = wrk(f"{mode}-predict-c64"), wrk(f"{mode}-healthz-c64")
        ratios = pair_ratios(res, mode, 64)
        if p and h and ratios:
            ratio, text = ratio_text(ratios)
            add(f"| predict throughput at 64 connections / `/healthz` throughput ({label}; median of the pairs) | ≥ 70% | "
                f"{text}; medians {rate(p):,.0f} vs {rate(h):,.0f} req/s | {verdict(ratio >= 0.70)} |")
    rounds = training_rounds(res)
    if rounds:
        ratios = [busy["latency_us"]["p99"] / idle["latency_us"]["p99"] for idle, busy in rounds]
        ratio = statistics.median(ratios)
        idle_p99 = statistics.median(idle["latency_us"]["p99"] for idle, _ in rounds)
        busy_p99 = statistics.median(busy["latency_us"]["p99"] for _, busy in rounds)
        label = (f"predict p99 at 16 connections during a training on {int(meta.get('train_rows', 0)):,} rows "
                 f"(default priority, `{meta.get('default_training_priority', '?')}`) / idle p99 (median of {len(rounds)} rounds)")
        measured = f"{ratio:.1f}x (p99 {ms(busy_p99)} vs {ms(idle_p99)})"
        add(f"| {label} | ≤ 2x | {measured} | {verdict(ratio <= 2.0)} |")
        add(f"| the same, against the training-priority issue's bound | ≤ 3x | {measured} | {verdict(ratio <= 3.0)} |")
    held = load(res / "hostile.json")
    hostile = hostile_runs(res)
    if held and hostile:
        parts = []
        for route, (quiet, training, during) in hostile.items():
            ratio = f", {during['latency_us']['p99'] / training['latency_us']['p99']:.1f}x" if training else ""
            parts.append(f"`/{route}` p99 {ms(during['latency_us']['p99'])}{ratio}{errors(during)}")
        add(f"| `/predict` and `/healthz` from a new client (wrk, 16 connections) while {held['target']:,} hostile "
            f"connections are held (p99, and its ratio to the same measurement without them) | both answer (≤ 1% errors) | "
            f"{'; '.join(parts)}; {held['held']['median']:,.0f} held (median) | "
            f"{verdict(all(answered(runs[2]) for runs in hostile.values()))} |")
    fits = fit_runs(res)
    default_priority = meta.get("default_training_priority", "adaptive")
    if default_priority in fits:
        alone, busy = fits[default_priority]
        ratio, text = fit_ratio(alone, busy)
        add(f"| a fit ({int(meta.get('fit_epochs', 0)):,} epochs on {int(meta.get('fit_rows', 0)):,} rows) beside "
            f"{meta.get('fit_busy_processes', '?')} busy processes / the same fit alone, default priority "
            f"(`{default_priority}`) | ≤ 3x | {text} ({fit_time(busy)} vs {fit_time(alone)}) | "
            f"{verdict(busy['finished'] and ratio <= 3.0)} |")
    unread = load(res / "unread.json")
    if unread:
        peak_kb = max(unread["max_rss_kb"] or 0, int(meta.get("unread_hwm_kb", 0)))
        add(f"| peak RSS while {unread['clients']} clients send a {unread['body_bytes'] / mb:.0f} MB `/predict` each and never "
            f"read the answer (VmHWM) | < 1.5 GB | {peak_kb * 1024 / mb:,.0f} MB | {verdict(peak_kb * 1024 < 1.5e9)} |")
        probes = unread["healthz"]
        if probes["probes"]:
            failed = f" ({probes['failed']} failed)" if probes["failed"] else ""
            add(f"| slowest `/healthz` meanwhile (new connection every 100 ms, {probes['probes']} probes) | < 1 s | "
                f"{probes['max_s'] * 1000:,.1f} ms{failed} | {verdict(probes['max_s'] < 1.0 and probes['failed'] == 0)} |")
    if train_wait:
        t = train_wait
        add(f"| `POST /train?wait=true` on Income1 with defaults, end to end (curl, median of {t['n']}) | < 10 ms | "
            f"{t['median'] * 1000:.2f} ms (min {t['min'] * 1000:.2f}, max {t['max'] * 1000:.2f}) | "
            f"{verdict(t['median'] < 0.010)} |")
    for bench_id, label, limit_ms in (
        ("adam_epoch/10000000x1/in_order", "Adam epoch, 10M rows x 1 feature, unshuffled (criterion median)", 150),
        ("least_squares/10000000x1", "least squares, 10M rows x 1 feature (criterion median)", 100),
    ):
        if bench_id in crit:
            value = crit[bench_id]["median_ns"] / 1e6
            add(f"| {label} | < {limit_ms} ms | {value:.1f} ms | {verdict(value < limit_ms)} |")
    parse = {k: v for k, v in crit.items() if k.startswith("parse_csv/")}
    for bench_id, data in sorted(parse.items()):
        tp = (data.get("throughput") or {}).get("Bytes")
        if tp:
            speed = tp / (data["median_ns"] / 1e9) / mb
            add(f"| CSV parsing, `{bench_id}` (criterion median) | ≥ 150 MB/s | {speed:.0f} MB/s | {verdict(speed >= 150)} |")
    if upload:
        numeric = upload["rows"] * 2 * 8
        peak = upload["hwm_kb"] * 1024
        allowed = numeric + 64 * mb
        add(f"| peak RSS while uploading a {upload['bytes'] / 2**30:.2f} GiB CSV ({upload['rows']:,} rows) | "
            f"≤ numeric data ({numeric / mb:.0f} MB) + 64 MB = {allowed / mb:.0f} MB | "
            f"{peak / mb:.0f} MB ({(peak - numeric) / mb:+.0f} MB over the numeric data) | {verdict(peak <= allowed)} |")
    shapes = {name: load(res / "uploads" / f"{name}.json") for name in UPLOAD_SHAPES}
    shapes = {name: r for name, r in shapes.items() if r}
    for name, r in shapes.items():
        numeric = r["numeric_bytes"]
        peak = r["hwm_kb"] * 1024
        allowed = numeric + 64 * mb
        if numeric:
            target = f"≤ numeric data ({numeric / mb:.0f} MB) + 64 MB = {allowed / mb:.0f} MB"
        else:
            target = "refused (422); ≤ 64 MB (nothing to parse)"
        statuses = ", ".join(sorted({str(u.get("status")) for u in r["uploads"]}))
        add(f"| peak RSS uploading {shape_label(name, r)} | {target} | {peak / mb:.0f} MB; answered {statuses} | "
            f"{verdict(peak <= allowed and upload_ok(r))} |")
    idle = meta.get("idle_rss_kb")
    if idle:
        idle_b = int(idle) * 1024
        add(f"| idle RSS (served model loaded, 1 s after start) | < 20 MB | {idle_b / mb:.1f} MB ({mib(int(idle))}) | "
            f"{verdict(idle_b < 20 * mb)} |")
    if startup:
        s = summary(startup["ms"])
        add(f"| start-up to first 200 from `/readyz` (median of {s['n']}) | < 100 ms | "
            f"{s['median']:.1f} ms (min {s['min']:.1f}, max {s['max']:.1f}) | {verdict(s['median'] < 100)} |")
    intake_targets(load(res / "intake.json"), add)
    streams_targets(load(res / "streams_ws.json"), add)
    add("")

    # --- throughput and latency ----------------------------------------------------------
    mark = len(lines)
    add("### Throughput and latency on loopback")
    add("")
    throughput = any(wrk(f"{mode}-{route}-c{c}") for mode in ("shared", "pinned") for route in ("healthz", "predict")
                     for c in conns)
    if throughput:
        add(f"`wrk` runs of {meta.get('duration', '?')} s after a 2 s warm-up; `-t1` at 1 connection, `-t2` above. "
            f"For each connection count, {meta.get('pairs', '1')} pairs of runs alternate `/healthz` and `/predict`; "
            "each row shows the medians over its runs, and the ratio is the median of the per-pair ratios (each pair listed). "
            "Latencies are wrk's (from request written to response read).")
        add("")
        add("| cores | route | connections | req/s | p50 | p90 | p99 | p99.9 | predict / healthz req/s |")
        add("|---|---|---|---|---|---|---|---|---|")
        for mode, label in (("shared", "shared"), ("pinned", "pinned")):
            for c in conns:
                p, h = wrk(f"{mode}-predict-c{c}"), wrk(f"{mode}-healthz-c{c}")
                ratios = pair_ratios(res, mode, c)
                for route, run in (("`GET /healthz`", h), ("`POST /predict`", p)):
                    if not run:
                        continue
                    lat = run["latency_us"]
                    ratio = ratio_text(ratios)[1] if (run is p and ratios) else ""
                    add(f"| {label} | {route} | {c} | {rate(run):,.0f}{errors(run)} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
                        f"{ms(lat['p99'])} | {ms(lat['p999'])} | {ratio} |")
        add("")
        cpu = {}
        for route in ("healthz", "predict"):
            text = (res / "profiles" / f"{route}-path.txt")
            match = re.search(r"about ([0-9.]+) µs of server CPU per request", text.read_text()) if text.exists() else None
            if match:
                cpu[route] = float(match.group(1))
        if len(cpu) == 2:
            add(f"Server CPU time per request, from the profiles of the pinned server at 64 connections: `/healthz` "
                f"{cpu['healthz']:.1f} µs, `/predict` {cpu['predict']:.1f} µs, so a CPU-bound server answers "
                f"{cpu['healthz'] / cpu['predict']:.0%} as many predicts as `/healthz` calls (less noisy than the wrk ratios, "
                "which the other load on the machine moves).")
            add("")
        add("*shared*: the server (two runtime workers) and wrk (up to two threads) run unpinned on the same two cores. "
            "*pinned*: `taskset -c 0` for the server (its runtime then starts one worker) and `taskset -c 1` for wrk.")
        add("")
    if syscalls:
        parts = ", ".join(
            f"{name} {syscalls['calls_per_request'][name]:.0f}x = {syscalls['ms_per_request'][name]:.2f} ms"
            for name in syscalls["ms_per_request"])
        add(f"Storing the model: per `/train?wait=true` (strace -T over {syscalls['requests']} more requests): {parts}.")
        add("")
    if healthz_curl:
        add(f"One sequential `curl` of `/healthz` (new connection each time) takes {healthz_curl['median'] * 1000:.2f} ms "
            f"median over {healthz_curl['n']} runs: the floor under the `/train?wait=true` figure.")
        add("")
    drop_if_empty(lines, mark, 2)

    # --- training interference -----------------------------------------------------------
    if rounds:
        priority = meta.get("default_training_priority", "the default")
        add(f"### Predict while a training on {int(meta.get('train_rows', 0)):,} rows runs")
        add("")
        add(f"Dataset: {int(meta.get('train_rows', 0)):,} rows uploaded as a {float(meta.get('train_csv_bytes', 0)) / mb:.0f} MB CSV "
            f"in {float(meta.get('train_upload_s', 0)):.2f} s ({meta.get('train_upload_mbs', '?')} MB/s). Each round measures "
            "`/predict` at 16 connections with no training, then starts `POST /train` with `{\"epochs\": 1000}` "
            f"(Adam, batch 32, shuffled: the defaults; the training at the server's default priority, `{priority}`), "
            "waits 2 s, measures again and cancels the job. The same pair then runs on the same data on a server "
            "started with `--training-priority idle` (`SCHED_IDLE`), and on one with `--training-priority 10` (nice 10).")
        add("")
        add("| round | state | req/s | p50 | p90 | p99 | p99.9 | max | p99 ratio |")
        add("|---|---|---|---|---|---|---|---|---|")
        runs = []
        for number, (idle, busy) in enumerate(rounds, 1):
            runs.append((str(number), "idle", idle, ""))
            runs.append((str(number), f"training (`{priority}`)", busy,
                         f"{busy['latency_us']['p99'] / idle['latency_us']['p99']:.1f}x"))
        for level, label in (("idle", "`idle`"), ("10", "nice 10")):
            idle = load(res / "wrk" / f"training-priority-{level}-idle.json")
            busy = load(res / "wrk" / f"training-priority-{level}-busy.json")
            if idle and busy:
                runs.append((f"`--training-priority {level}`", "idle", idle, ""))
                runs.append((f"`--training-priority {level}`", f"training ({label})", busy,
                             f"{busy['latency_us']['p99'] / idle['latency_us']['p99']:.1f}x"))
        # The controls run on the last server started, after its idle measurement.
        idle_last = load(res / "wrk" / "training-priority-10-idle.json") or rounds[-1][0]
        others = [
            ("control", "no training; a one-thread busy loop in another process",
             load(res / "wrk" / "training-control-busy-loop.json")),
            ("control", "no training; a memory-reading loop at SCHED_IDLE in another process",
             load(res / "wrk" / "training-control-idle-memory.json")),
        ]
        for number, label, run in others:
            if run:
                runs.append((number, label, run, f"{run['latency_us']['p99'] / idle_last['latency_us']['p99']:.1f}x"))
        for number, label, run, ratio in runs:
            lat = run["latency_us"]
            add(f"| {number} | {label} | {rate(run):,.0f}{errors(run)} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
                f"{ms(lat['p99'])} | {ms(lat['p999'])} | {ms(lat['max'])} | {ratio} |")
        add("")
        add("The controls ran on the last server started; their ratios are against its idle measurement "
            "(the last idle row above).")
        add("")
        speeds = []
        for key, label in (("epoch_s_alone", f"at `{priority}` with no requests"),
                           ("epoch_s_loaded", f"at `{priority}` while wrk ran"),
                           ("epoch_s_priority_idle", "at `idle` while wrk ran"),
                           ("epoch_s_priority_10", "at nice 10 while wrk ran")):
            if meta.get(key):
                speeds.append(f"{float(meta[key]):.2f} s per epoch {label}")
        if speeds:
            add("Training speed (shuffled epochs over all rows): " + "; ".join(speeds) + ".")
            add("")
        if meta.get("train_warning"):
            add(f"Warning: {meta['train_warning']}.")
            add("")

    # --- hostile connections ------------------------------------------------------------
    if held and hostile:
        add("### Hostile connections")
        add("")
        add(f"A server with its defaults (header timeout {meta.get('default_header_timeout', '?')}, keep-alive timeout "
            f"{meta.get('default_keep_alive_timeout', '?')}, write timeout {meta.get('default_write_timeout', '?')}, "
            f"bodies at least {meta.get('default_min_body_rate', '?')} bytes/s over each "
            f"{meta.get('default_body_idle_timeout', '?')}, {meta.get('default_max_streams', '?')} streams, "
            f"{meta.get('default_max_uploads', '?')} uploads, {meta.get('default_max_buffered', '?')} of buffered bodies "
            f"and answers; open-file limit {meta.get('hostile_server_open_files', '?')}) serves a least-squares model of "
            f"Income1, with a dataset of {int(meta.get('hostile_rows', 0)):,} rows "
            f"({float(meta.get('hostile_csv_bytes', 0)) / mb:.1f} MB, more than a socket's send buffer) uploaded. "
            "wrk measures `/predict` and `/healthz` at 16 connections: on the quiet server, then with a "
            "`{\"epochs\": 1000000}` training running, then with the training still running and "
            f"{held['target']:,} hostile connections held by `scripts/bench/hostile.py` (on the same two cores). "
            f"They were opened at {held['target'] / held['ramp_s']:,.0f} a second (all within {held['ramp_s']:.1f} s); "
            "each one the server closes is opened again 0.3 to 0.8 s later (1 to 2 s after a 503). "
            "The last column compares with the measurement with the training running and no hostile connections.")
        add("")
        add("| route | state | req/s | p50 | p90 | p99 | p99.9 | max | p99 / quiet p99 | p99 / p99 without the hostile connections |")
        add("|---|---|---|---|---|---|---|---|---|---|")
        for route, (quiet, training, during) in hostile.items():
            for label, run in (("quiet", quiet), ("training running", training),
                               (f"training running, {held['target']:,} hostile connections held", during)):
                if not run:
                    continue
                lat = run["latency_us"]
                to_quiet = f"{lat['p99'] / quiet['latency_us']['p99']:.1f}x" if (quiet and run is not quiet) else ""
                to_training = f"{lat['p99'] / training['latency_us']['p99']:.1f}x" if (training and run is during) else ""
                add(f"| `/{route}` | {label} | {rate(run):,.0f}{errors(run)} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
                    f"{ms(lat['p99'])} | {ms(lat['p999'])} | {ms(lat['max'])} | {to_quiet} | {to_training} |")
        add("")
        add(f"Held during the measurements ({held['samples_measuring']} samples a second apart; held means the "
            "server's side of the connection is established, from `/proc/net/tcp`):")
        add("")
        add("| kind | connections | held: median (min to max) | opened in all | how the closed ones ended |")
        add("|---|---|---|---|---|")
        for kind, k in held["kinds"].items():
            ends = ", ".join(f"{what} {n:,}" for what, n in sorted(k["outcomes"].items(), key=lambda item: -item[1]))
            if k.get("connect_errors"):
                ends += f", connect errors {k['connect_errors']:,}"
            h = k["held"] or {"median": 0, "min": 0, "max": 0}
            add(f"| `{kind}`: {k['what']} | {k['target']:,} | {h['median']:,.0f} ({h['min']:,} to {h['max']:,}) | "
                f"{k['opened']:,} | {ends or 'still open'} |")
        h = held["held"]
        add(f"| all | {held['target']:,} | {h['median']:,.0f} ({h['min']:,} to {h['max']:,}) | "
            f"{sum(k['opened'] for k in held['kinds'].values()):,} | |")
        add("")
        notes = []
        if held.get("server_files"):
            notes.append(f"the server had up to {held['server_files']['max']:,} files open")
        if held.get("server_rss_kb"):
            notes.append(f"its VmRSS was {mib(held['server_rss_kb']['min'])} to {mib(held['server_rss_kb']['max'])}")
        for key, label in (("hostile_curl_healthz", "a `curl` of `/healthz`"),
                           ("hostile_curl_upload", "an upload of the same dataset")):
            if meta.get(key):
                code, seconds = meta[key].split()
                notes.append(f"{label} from a new client got {code} in {float(seconds) * 1000:.1f} ms")
        if meta.get("hostile_training_state"):
            notes.append(f"the training was {meta['hostile_training_state']} at the end")
        if notes:
            add("Meanwhile " + "; ".join(notes) + ".")
            add("")

    # --- training priority --------------------------------------------------------------
    if fits:
        add("### A fit beside busy programs")
        add("")
        add(f"`POST /train?wait=true` with `{{\"epochs\": {int(meta.get('fit_epochs', 0))}, \"seed\": 1}}` (Adam, batch 32, "
            f"shuffled) on {int(meta.get('fit_rows', 0)):,} rows, timed end to end, on an otherwise idle server: alone, then "
            f"beside {meta.get('fit_busy_processes', '?')} busy processes (`sh -c 'while :; do :; done'`, one per core, "
            "nice 0), on a server started with each `--training-priority`. A fit still running after "
            f"{float(meta.get('fit_limit_s', 0)):.0f} s is cancelled (`DELETE /v1/jobs/{{id}}`) and shown as longer "
            "than that, with the time its pace would have taken if it had done any epochs.")
        add("")
        add("| `--training-priority` | fit alone | fit beside the busy processes | ratio (target ≤ 3x) |")
        add("|---|---|---|---|")
        for priority, (alone, busy) in fits.items():
            ratio, text = fit_ratio(alone, busy)
            default = " (the default)" if priority == default_priority else ""
            add(f"| {priority_name(priority)}{default} | {fit_time(alone)} | {fit_time(busy)} | "
                f"{text}: {verdict(busy['finished'] and alone['finished'] and ratio <= 3.0)} |")
        add("")

    # --- memory: unread answers, long histories -----------------------------------------
    histories = load(res / "history_sizes.json")
    if unread or histories:
        add("### Answers never read, and long loss histories")
        add("")
    if unread:
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(unread["statuses"].items()))
        refused = ", ".join(f"{n} {error}" for error, n in sorted(unread["send_errors"].items()))
        add(f"{unread['clients']} clients connect at once with a small receive buffer (`SO_RCVBUF` 4 KiB) and each send a "
            f"`/predict` of {unread['values']:,} values ({unread['body_bytes'] / mb:.1f} MB; `--max-body` is "
            f"{meta.get('default_max_body', '?')}), then never read the answer (about 22 bytes a value). The server's "
            f"VmRSS is sampled every 100 ms and `/healthz` timed on a new connection every 100 ms for "
            f"{unread['seconds']:g} s; then the first bytes of each answer are peeked at (`MSG_PEEK`, nothing is taken from "
            f"the socket). The server holds answers in flight within `--max-buffered` ({meta.get('default_max_buffered', '?')}; "
            f"more is 503) and closes a connection whose answer goes unread for `--write-timeout` "
            f"({meta.get('default_write_timeout', '?')}), longer than the window watched here.")
        add("")
        add("| figure | value |")
        add("|---|---|")
        add(f"| answers (status line peeked at the end) | {statuses} |")
        add(f"| bodies sent whole | {unread['sent']} of {unread['clients']}"
            + (f" (the others: {refused}, the server answered before their body was read)" if refused else "") + " |")
        before = int(meta.get("unread_rss_before_kb", 0))
        add(f"| VmRSS before, peak sampled, VmHWM | {mib(before)}, {mib(unread['max_rss_kb'])}, "
            f"{mib(int(meta.get('unread_hwm_kb', 0)))} |")
        add(f"| VmRSS at the end of the window, 1 s after the clients closed | {mib(unread['rss_end_kb'])}, "
            f"{mib(unread['rss_after_close_kb'])} |")
        probes = unread["healthz"]
        if probes["ok"]:
            add(f"| `/healthz` meanwhile: probes, failed, median, max | {probes['probes']}, {probes['failed']}, "
                f"{probes['median_s'] * 1000:.2f} ms, {probes['max_s'] * 1000:.1f} ms |")
        timeline = unread.get("timeline") or []
        if timeline:
            points = ", ".join(f"{t:g} s: {kb / 1024:.0f}" for t, kb in timeline[:: max(1, len(timeline) // 12)])
            add(f"| VmRSS over the window (MiB) | {points} |")
        add("")
    if histories:
        add("A fit of 1,000,000 epochs on Income1 (`POST /train?wait=true` with `{\"epochs\": 1000000}`), then the "
            "answers that show its loss history: sampled (the default) and with `?history=full`.")
        add("")
        add("| answer | bytes | loss points | time |")
        add("|---|---|---|---|")
        if meta.get("long_fit_answer_bytes"):
            add(f"| `POST /train?wait=true` (the job and the model; the time includes the fit) | "
                f"{int(meta['long_fit_answer_bytes']):,} | | {float(meta.get('long_fit_s', 0)):.2f} s |")
        for key in ("job", "job_full", "model", "model_full"):
            h = histories.get(key)
            if h:
                points = f"{h['points']:,}" if h["points"] is not None else f"status {h['status']}"
                add(f"| `GET {h['path']}` | {h['bytes']:,} | {points} | {h['ms']:.1f} ms |")
        add("")
        if meta.get("long_fit_hwm_kb"):
            add(f"VmHWM of that server afterwards (it also served the unread answers above): "
                f"{mib(int(meta['long_fit_hwm_kb']))}.")
            add("")

    # --- start-up and memory -------------------------------------------------------------
    mark = len(lines)
    add("### Start-up and memory")
    add("")
    add("| figure | value |")
    add("|---|---|")
    if startup:
        s = summary(startup["ms"])
        r = summary(startup["rss_kb"])
        add(f"| spawn to first 200 from `/readyz`, {s['n']} runs (data dir with a trained model, polled every 0.2 ms) | "
            f"min {s['min']:.1f} ms, median {s['median']:.1f} ms, max {s['max']:.1f} ms |")
        add(f"| VmRSS at that first 200 | median {mib(r['median'])} |")
    for key, label in (
        ("idle_rss_kb", "VmRSS 1 s after start, before any load"),
        ("after_load_rss_kb", "VmRSS after all the wrk runs on the shared cores"),
        ("after_load_hwm_kb", "VmHWM (peak) after those runs"),
    ):
        if meta.get(key):
            add(f"| {label} | {mib(int(meta[key]))} |")
    if upload:
        numeric = upload["rows"] * 2 * 8
        size = f"{upload['bytes'] / 2**30:.2f} GiB"
        add(f"| {size} upload: CSV size, rows | {upload['bytes']:,} bytes, {upload['rows']:,} rows |")
        add(f"| {size} upload: wall time (curl), throughput | {upload['seconds']:.2f} s, "
            f"{upload['bytes'] / upload['seconds'] / mb:.0f} MB/s |")
        add(f"| {size} upload: VmRSS before, VmHWM after, VmRSS 1 s after | {mib(upload['rss_before_kb'])}, "
            f"{mib(upload['hwm_kb'])}, {mib(upload['rss_after_kb'])} |")
        add(f"| {size} upload: peak VmRSS sampled every 5 ms | {mib(upload['watch']['max_rss_kb'])} |")
        add(f"| parsed numeric data (rows x 2 columns x 8 bytes) | {numeric / mb:.0f} MB ({numeric / 2**20:.0f} MiB) |")
        timeline = upload["watch"].get("timeline") or []
        if timeline:
            points = ", ".join(f"{t:g} s: {kb / 1024:.0f}" for t, kb in timeline[:: max(1, len(timeline) // 12)])
            add(f"| VmRSS during the upload (MiB) | {points} |")
    add("")
    drop_if_empty(lines, mark, 5)

    # --- upload memory by shape ---------------------------------------------------------
    if shapes:
        add("### Upload memory by shape")
        add("")
        add("Each upload goes to a freshly started server, whose VmHWM afterwards is the peak. The files are made on the fly "
            "by `scripts/bench/uploads.py` and streamed as a multipart body with its `Content-Length`. The allowance is the "
            "parsed numeric data (rows x numeric columns x 8 bytes) + 64 MB; a file that must be refused parses nothing. "
            "The server receives a whole upload into a temporary file before it parses it, so a refusal comes after the "
            "last byte; the time after it is the parse up to the error.")
        add("")
        add("| upload | numeric data | answer | time to the answer (after the last byte) | error message | "
            "VmHWM | peak VmRSS sampled every 5 ms | result |")
        add("|---|---|---|---|---|---|---|---|")
        if upload:
            numeric = upload["rows"] * 2 * 8
            add(f"| many short rows: the {upload['bytes'] / 2**30:.2f} GiB upload above ({upload['rows']:,} rows) | "
                f"{numeric / mb:.0f} MB | 200 | {upload['seconds']:.2f} s | | {mib(upload['hwm_kb'])} | "
                f"{mib(upload['watch']['max_rss_kb'])} | {verdict(upload['hwm_kb'] * 1024 <= numeric + 64 * mb)} |")
        for name, r in shapes.items():
            answers, times, messages = [], [], []
            for u in r["uploads"]:
                answers.append(str(u.get("status")) + (f" ({u['error']})" if u.get("error") else ""))
                after = f" ({u['after_last_byte_s'] * 1000:.0f} ms)" if u.get("after_last_byte_s") is not None else " (before)"
                times.append(f"{u['seconds']:.2f} s{after}")
                if u.get("message") and u.get("status") != 200:
                    messages.append(f"{u['message_chars']} characters: \"{u['message']}\"")
            numeric = r["numeric_bytes"]
            add(f"| {shape_label(name, r)} | {numeric / mb:.0f} MB | {', '.join(answers)} | {', '.join(times)} | "
                f"{'; '.join(sorted(set(messages)))} | {mib(r['hwm_kb'])} | {mib(r['watch']['max_rss_kb'])} | "
                f"{verdict(r['hwm_kb'] * 1024 <= numeric + 64 * mb and upload_ok(r))} |")
        add("")

    # --- the sections the step scripts write whole: a cluster (cluster.py), appending rows
    # (intake.py), the HTTP prediction protocols (protocols.py) ---------------------------
    for section in ("cluster", "intake", "protocols"):
        written = res / f"{section}.md"
        if written.exists():
            lines.extend(written.read_text().splitlines())
            add("")

    # --- streaming predictions (examples/predict_ws.rs, examples/predict_mqtt.rs) ------------
    streams_section(load(res / "streams_ws.json"), load(res / "streams_mqtt.json"), add)

    # --- criterion -----------------------------------------------------------------------
    if crit:
        bw = membw["read_gbs_best"] if membw else None
        add("### Micro-benchmarks (criterion, `cargo bench`)")
        add("")
        if bw:
            others = ", ".join(f"{run['read_gbs_best']:.1f}" for run in membw_runs)
            add(f"Reference: one core reads memory sequentially at {bw:.1f} GB/s (`scripts/bench/membw.c`: best of "
                f"{membw['passes']} passes over {membw['mib']} MiB, the better of the runs at the start and at the end "
                f"of the benchmark, which gave {others} GB/s; the machine is shared, so this is a lower bound).")
            add("")
            if "random_gather_ms_best" in membw:
                gather, shuffle = membw["random_gather_ms_best"], membw["random_shuffle_ms_best"]
                add(f"Floor under a shuffled epoch of {membw['random_rows']:,} rows x 1 feature (same program, best "
                    f"of 5, huge pages, prefetching 32 ahead like the training code): reading the 16-byte rows in a "
                    f"random order takes {gather:.0f} ms and a Fisher-Yates shuffle of the `u32` order "
                    f"{shuffle:.0f} ms, {gather + shuffle:.0f} ms of memory latency with no arithmetic at all.")
                add("")
        add("| benchmark | median | throughput | bytes read / row | effective read bandwidth | share of one core's bandwidth |")
        add("|---|---|---|---|---|---|")
        for bench_id, data in sorted(crit.items()):
            tp = data.get("throughput") or {}
            seconds = data["median_ns"] / 1e9
            if "Bytes" in tp:
                throughput = f"{tp['Bytes'] / seconds / mb:,.0f} MB/s"
            elif "Elements" in tp:
                throughput = f"{tp['Elements'] / seconds:,.3g} elem/s"
            else:
                throughput = ""
            per_row, gbs, share = "", "", ""
            rows_features = None
            if bench_id.startswith(("adam_epoch/", "least_squares/")):
                shape = bench_id.split("/")[1]
                rows_features = tuple(int(v) for v in shape.split("x"))
            if rows_features:
                rows, features = rows_features
                bytes_row = (least_squares_bytes if bench_id.startswith("least") else epoch_bytes)(features)
                if bench_id.endswith("shuffled"):
                    per_row = f"{bytes_row} (+4 of permutation; random rows)"
                    bytes_row += 4
                else:
                    per_row = str(bytes_row)
                effective = rows * bytes_row / seconds / 1e9
                gbs = f"{effective:.2f} GB/s"
                share = f"{effective / bw:.0%}" if bw else ""
            add(f"| `{bench_id}` | {fmt_ns(data['median_ns'])} | {throughput} | {per_row} | {gbs} | {share} |")
        add("")

    # --- versus the original -------------------------------------------------------------
    mark = len(lines)
    add("### Against the original Flask + TensorFlow service")
    add("")
    add("| figure | original (2-core machine) | regserve | factor |")
    add("|---|---|---|---|")
    if train_wait:
        med = train_wait["median"]
        add(f"| `POST /train` (500 epochs, 30 rows), end to end | 1.3 to 2.1 s | {med * 1000:.2f} ms | "
            f"{1.3 / med:,.0f}x to {2.1 / med:,.0f}x faster |")
    p1 = wrk("shared-predict-c1")
    if p1:
        add(f"| one sequential predict, median | about 95 ms | {ms(p1['latency_us']['p50'])} | "
            f"{95000 / p1['latency_us']['p50']:,.0f}x faster |")
    p16 = wrk("shared-predict-c16")
    if p16:
        add(f"| predicts/s at 16 connections | about 16 | {rate(p16):,.0f} | {rate(p16) / 16:,.0f}x |")
        add(f"| p50 at 16 connections | about 0.9 s | {ms(p16['latency_us']['p50'])} | "
            f"{900000 / p16['latency_us']['p50']:,.0f}x lower |")
    if meta.get("idle_rss_kb"):
        idle_mb = int(meta["idle_rss_kb"]) * 1024 / mb
        add(f"| resident memory, idle | about 530 MB | {idle_mb:.1f} MB | {530 / idle_mb:,.0f}x smaller |")
    if meta.get("after_load_rss_kb"):
        load_mb = int(meta["after_load_rss_kb"]) * 1024 / mb
        add(f"| resident memory after load | about 630 MB | {load_mb:.1f} MB | {630 / load_mb:,.0f}x smaller |")
    add("")
    drop_if_empty(lines, mark, 5)

    # --- profiles ------------------------------------------------------------------------
    profiles = sorted((res / "profiles").glob("*.txt")) if (res / "profiles").exists() else []
    if profiles:
        add("### Profiles")
        add("")
        add(f"{meta.get('profiler_note', '')}")
        add("")
        for path in profiles:
            add(f"<details><summary>{path.stem}</summary>")
            add("")
            add("```text")
            add("\n".join(line if len(line) <= 170 else line[:167] + "..." for line in path.read_text().rstrip().splitlines()))
            add("```")
            add("")
            add("</details>")
            add("")

    # --- commands ------------------------------------------------------------------------
    commands = res / "commands.txt"
    if commands.exists():
        add("### Commands")
        add("")
        add("Everything above comes from `scripts/bench.sh` (`--service-only` skips criterion and the epoch profiles). "
            "It ran these commands (`$PORT`, `$DATA`, `$TMP` stand for the port, a fresh data directory and a "
            "scratch directory):")
        add("")
        add("```sh")
        add(commands.read_text().rstrip())
        add("```")
        add("")

    figures = "\n".join(lines).rstrip() + "\n"
    path = Path(markdown)
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{BEGIN}\n{figures}{END}{tail}"
    else:
        text = (
            "# Benchmarks\n\n"
            "Produced by `scripts/bench.sh`; the part between the markers is regenerated on every run.\n\n"
            f"## Figures\n\n{BEGIN}\n{figures}{END}\n\n"
            "## Where the time goes\n\n(to be written from the profiles above)\n\n"
            "## Distance to the limit\n\n(to be written from the figures above)\n"
        )
    path.write_text(text)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    command, args = argv[1], argv[2:]
    handlers = {
        "ready": cmd_ready,
        "rss-watch": cmd_rss_watch,
        "status": cmd_status,
        "stats": cmd_stats,
        "get": cmd_get,
        "bench-exe": cmd_bench_exe,
        "strace-sum": cmd_strace_sum,
        "fit": cmd_fit,
        "history-sizes": cmd_history_sizes,
        "perf-table": cmd_perf_table,
        "criterion": cmd_criterion,
        "render": render,
    }
    if command not in handlers:
        sys.exit(__doc__)
    handlers[command](*args)


if __name__ == "__main__":
    main(sys.argv)
