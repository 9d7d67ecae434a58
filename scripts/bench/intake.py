#!/usr/bin/env python3
"""The intake benchmark of scripts/bench.sh: appends rows to the release binary over HTTP and a
WebSocket (with the feed example as the client), on the local store and on SeaweedFS, every row
acknowledged only once durable; times a batch from sent to acknowledged; then appends 100 million
rows to a local store while watching the server's memory, and times the exact solver on them
(from the segments' statistics) against a pass over the rows. Writes intake.json and intake.md
(the BENCHMARKS.md section) into the results directory.

MQTT and Kafka: mosquitto and Tansu (started by scripts/brokers.sh) carry messages of 1 to 100
rows; the broker's own rate, to a plain subscriber (QoS 1) or consumer that only counts what it
receives, is set against the server's intake of the same messages, every row durable before its
acknowledgement (MQTT) or stored with its offset (Kafka).

Usage: intake.py BINARY FEED BROKER_FEED WEED RESULTS [--quick]
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import BUCKET, KEYS, Processes, free_port, http  # noqa: E402


def feed(feeder, mode, base, seconds, clients, rows, total=None):
    args = [feeder, mode, base, str(seconds), str(clients), str(rows)] + ([str(total)] if total else [])
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


ROOT = Path(__file__).resolve().parents[2]


def run_json(args):
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def start_broker(kind, directory):
    """Starts mosquitto or tansu with scripts/brokers.sh; its port."""
    script = f"source {ROOT}/scripts/brokers.sh && start_{kind} {directory}"
    return int(subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout.split()[-1])


def stop_broker(kind, directory):
    subprocess.run(["bash", "-c", f"source {ROOT}/scripts/brokers.sh && stop_pid {directory}/{kind}.pid"], check=False)


def rows_of(base):
    return http("GET", f"{base}/v1/dataset")[1]["rows"]


def until_rows(base, rows, limit=600):
    """Waits until the dataset has `rows` rows; the time the first new row and the last were seen."""
    before, first, deadline = rows_of(base), None, time.time() + limit
    while time.time() < deadline:
        now = rows_of(base)
        if first is None and now > before:
            first = time.time()
        if now >= rows:
            return first or time.time(), time.time()
        time.sleep(0.01)
    sys.exit(f"intake.py: the dataset did not reach {rows} rows")


def ratio(mqtt):
    return mqtt["intake_rows_per_second"] / mqtt["broker_rows_per_second"]


def cpu_seconds(pid):
    """User and system CPU time of process `pid` so far (/proc ticks are 1/100 s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def status_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Bench(Processes):
    def __init__(self, binary, feeder, broker_feeder, scratch):
        super().__init__(scratch)
        self.binary, self.feeder, self.broker_feeder = binary, feeder, broker_feeder
        self.mosquitto_pid = None

    def server(self, store, env=None, flags=()):
        """A server on `store`, once it answers; `None` if it exits first (a bucket not made yet)."""
        port = free_port()
        args = [self.binary, "--store", store, "--addr", f"127.0.0.1:{port}", *flags]
        proc = self.spawn(args, {"RUST_LOG": "warn", **(env or {})}, f"server-{port}")
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            try:
                if http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    return proc, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        self.procs.remove(proc)
        return None

    def backend(self, store, env, seconds):
        started = self.server(store, env)
        if started is None:
            return None
        proc, base = started
        result = {
            "http": feed(self.feeder, "http", base, seconds, 4, 10_000),
            "websocket": feed(self.feeder, "ws", base, seconds, 2, 10_000),
            "latency": feed(self.feeder, "http", base, seconds, 1, 100),
        }
        proc.terminate()
        proc.wait(timeout=30)
        return result

    def mqtt(self, port, messages, rows):
        """The broker's rate to a plain subscriber, and the server's intake of the same messages;
        with the CPU time each process spent on them."""
        address, topic = f"127.0.0.1:{port}", f"bench-{time.time_ns()}"
        subscriber = subprocess.Popen([self.broker_feeder, "mqtt-subscribe", address, topic, str(messages)],
                                      stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        broker_cpu = cpu_seconds(self.mosquitto_pid)
        published = run_json([self.broker_feeder, "mqtt-publish", address, topic, str(messages), str(rows)])
        received = json.loads(subscriber.communicate(timeout=600)[0])
        plain = self.mqtt_run(published, received["last"], broker_cpu, received["cpu_seconds"])
        topic = f"intake-{time.time_ns()}"
        flags = ["--mqtt-url", f"mqtt://{address}", "--mqtt-topic", topic, "--mqtt-client-id", topic]
        proc, base = self.server(str(self.scratch / topic), flags=flags)
        time.sleep(0.5)
        target = rows_of(base) + messages * rows
        server_cpu, broker_cpu = cpu_seconds(proc.pid), cpu_seconds(self.mosquitto_pid)
        published = run_json([self.broker_feeder, "mqtt-publish", address, topic, str(messages), str(rows)])
        _, last = until_rows(base, target)
        intake = self.mqtt_run(published, last, broker_cpu, cpu_seconds(proc.pid) - server_cpu)
        proc.terminate()
        proc.wait(timeout=30)
        return {"rows_per_message": rows, "messages": messages, "plain": plain, "intake": intake,
                "broker_rows_per_second": messages * rows / plain["seconds"],
                "intake_rows_per_second": messages * rows / intake["seconds"]}

    def mqtt_run(self, published, last, broker_cpu_before, subscriber_cpu):
        """One run's wall time, from the first message published to the last one taken, and the CPU
        seconds of mosquitto (since `broker_cpu_before`), the publisher and the subscriber."""
        return {"seconds": last - published["first"], "broker_cpu": cpu_seconds(self.mosquitto_pid) - broker_cpu_before,
                "publisher_cpu": published["cpu_seconds"], "subscriber_cpu": subscriber_cpu}

    def mqtt_median(self, port, messages, rows, runs=3):
        """`mqtt` a few times over (the rates of two processes sharing two cores vary from one run to
        the next): the run with the median ratio, and every run's ratio."""
        results = sorted((self.mqtt(port, messages, rows) for _ in range(runs)), key=ratio)
        return {**results[len(results) // 2], "ratios": [ratio(result) for result in results]}

    def kafka(self, port, records, rows):
        """A plain consumer's read rate, and the server's intake of the same records."""
        address, topic = f"127.0.0.1:{port}", f"bench-{time.time_ns()}"
        run_json([self.broker_feeder, "kafka-produce", address, topic, str(records), str(rows), "3"])
        consumed = run_json([self.broker_feeder, "kafka-consume", address, topic, str(records), "3"])
        consumer_rate = records * rows / (consumed["last"] - consumed["first"])
        flags = ["--kafka-brokers", address, "--kafka-topic", topic]
        proc, base = self.server(str(self.scratch / topic), flags=flags)
        first, last = until_rows(base, 30 + records * rows)
        proc.terminate()
        proc.wait(timeout=30)
        return {"rows_per_record": rows, "records": records, "consumer_rows_per_second": consumer_rate,
                "intake_rows_per_second": records * rows / (last - first)}

    def hundred_million(self, total, seconds):
        proc, base = self.server(str(self.scratch / "big"))  # a local store always starts
        samples, done = [], threading.Event()

        def watch():
            while not done.is_set():
                samples.append(status_kib(proc.pid, "VmRSS"))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        fed = feed(self.feeder, "http", base, seconds, 4, 10_000, total)
        done.set()
        watcher.join()
        peak_while_appending = status_kib(proc.pid, "VmHWM")
        summary = http("GET", f"{base}/v1/dataset")[1]
        exact = []
        for _ in range(5):
            started = time.perf_counter()
            status, answer = http("POST", f"{base}/train?wait=true&history=none", {"solver": "least-squares"}, timeout=600)
            assert status == 200, answer
            exact.append({"request_ms": (time.perf_counter() - started) * 1e3, "fit_ms": answer["model"]["duration_ms"],
                          "mse": answer["model"]["mse"], "kernel": answer["model"]["kernel"][0]})
        started = time.perf_counter()
        status, over_rows = http("POST", f"{base}/train?wait=true&history=none",
                                 {"solver": "adam-standardized", "epochs": 1, "batch_size": 1_000_000}, timeout=3600)
        assert status == 200, over_rows
        pass_seconds = time.perf_counter() - started
        result = {"fed": fed, "rows": summary["rows"], "segments": summary["segments"],
                  "columns": len(summary["columns"]), "peak_rss_kib": peak_while_appending,
                  "largest_rss_sample_kib": max(samples, default=0), "exact": exact,
                  "optimum_over_rows": over_rows["model"]["optimum_mse"], "pass_seconds": pass_seconds}
        proc.terminate()
        proc.wait(timeout=60)
        return result


def main():
    binary, feeder, broker_feeder, weed, results = sys.argv[1:6]
    quick = "--quick" in sys.argv[6:]
    seconds, total = (2, 5_000_000) if quick else (5, 100_000_000)
    scratch = Path(results) / "intake-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    bench = Bench(binary, feeder, broker_feeder, scratch)
    brokers = scratch / "brokers"
    try:
        report = {"seconds": seconds, "local": bench.backend(str(scratch / "local"), None, seconds)}
        mosquitto, tansu = start_broker("mosquitto", brokers / "mosquitto"), start_broker("tansu", brokers / "tansu")
        bench.mosquitto_pid = int((brokers / "mosquitto" / "mosquitto.pid").read_text())
        scale = 10 if quick else 1
        report["mqtt"] = [bench.mqtt_median(mosquitto, messages // scale, rows) for messages, rows in
                          ((100_000, 1), (50_000, 10), (20_000, 100))]
        report["kafka"] = [bench.kafka(tansu, records // scale, rows) for records, rows in ((500_000, 1), (50_000, 100))]
        bench.start_weed(weed)
        env = {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{bench.s3}", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
        report["s3"] = backend_when_ready(bench, env, seconds)
        report["big"] = bench.hundred_million(total, 1200)
    finally:
        bench.stop()
        stop_broker("mosquitto", brokers / "mosquitto")
        stop_broker("tansu", brokers / "tansu")
    (Path(results) / "intake.json").write_text(json.dumps(report, indent=1))
    (Path(results) / "intake.md").write_text(markdown(report))
    print(markdown(report))


def backend_when_ready(bench, env, seconds):
    """The S3 figures, once SeaweedFS has made its bucket (a moment after it first answers)."""
    for _ in range(60):
        result = bench.backend(f"s3://{BUCKET}/intake", env, seconds)
        if result is not None:
            return result
        time.sleep(1)
    sys.exit("intake.py: the server did not start on SeaweedFS")


def markdown(r):
    local, s3, big = r["local"], r["s3"], r["big"]
    numeric_mib = big["rows"] * big["columns"] * 8 / 2**20
    peak_mib = big["peak_rss_kib"] / 1024
    exact = sorted(big["exact"], key=lambda e: e["request_ms"])
    median = exact[len(exact) // 2]
    agreement = abs(median["mse"] - big["optimum_over_rows"]) / big["optimum_over_rows"]
    rate = lambda x: f"{x['rows_per_second'] / 1e6:.2f}M rows/s"
    lines = [
        "### Appending rows",
        "",
        "The release binary with its defaults (`--commit-interval 2ms`), every batch answered only once its segment "
        "is stored (fsync on the local store, a PUT on SeaweedFS). The client is the `feed` example, on the same two "
        f"cores; each run lasts {r['seconds']} s. Batches of 10,000 one-feature rows: CSV over HTTP with 4 clients, "
        "JSON frames over one WebSocket each for 2 clients (16 in flight). Made by `scripts/bench/intake.py`.",
        "",
        "| figure | local store | S3 (SeaweedFS) |",
        "|---|---|---|",
        f"| HTTP `POST /v1/data`, 4 clients | {rate(local['http'])} | {rate(s3['http'])} |",
        f"| WebSocket, 2 connections | {rate(local['websocket'])} | {rate(s3['websocket'])} |",
        f"| one client, batches of 100 rows, sent to acknowledged | p50 {local['latency']['p50_ms']:.2f} ms, "
        f"p99 {local['latency']['p99_ms']:.2f} ms | p50 {s3['latency']['p50_ms']:.2f} ms, p99 {s3['latency']['p99_ms']:.2f} ms |",
        f"| HTTP batch of 10,000 rows under load, sent to acknowledged | p50 {local['http']['p50_ms']:.1f} ms, "
        f"p99 {local['http']['p99_ms']:.1f} ms | p50 {s3['http']['p50_ms']:.1f} ms, p99 {s3['http']['p99_ms']:.1f} ms |",
        "",
        "MQTT (mosquitto, QoS 1, one publisher) and Kafka (Tansu, 3 partitions, the topic written beforehand): the "
        "broker's own rate, to a plain subscriber or consumer that only counts, against the server's intake of the "
        "same messages on the local store (every message acknowledged only once its rows are durable; Kafka offsets "
        "stored with the rows). Messages are JSON batches. MQTT: each size three times, plain subscriber then server; "
        "the run of the median ratio, with the three ratios.",
        "",
        "| messages | broker to a plain client | server's intake | intake / broker |",
        "|---|---|---|---|",
        *[f"| MQTT, {m['messages']:,} of {m['rows_per_message']} row(s) | {m['broker_rows_per_second']:,.0f} rows/s | "
          f"{m['intake_rows_per_second']:,.0f} rows/s | {ratio(m):.0%} ({', '.join(f'{x:.0%}' for x in m['ratios'])}) |"
          for m in r["mqtt"]],
        *[f"| Kafka, {k['records']:,} records of {k['rows_per_record']} row(s) | {k['consumer_rows_per_second']:,.0f} rows/s | "
          f"{k['intake_rows_per_second']:,.0f} rows/s | {k['intake_rows_per_second'] / k['consumer_rows_per_second']:.0%} |"
          for k in r["kafka"]],
        "",
        "Where the two cores went during the MQTT runs: CPU seconds of each process over the same messages, for the "
        "plain subscriber's run and for the server's (its subscriber decodes every row, commits it with fsync, and "
        "acknowledges it after).",
        "",
        "| messages | run | wall | mosquitto | publisher | subscriber | all three, of 2 cores |",
        "|---|---|---|---|---|---|---|",
        *[f"| {m['messages']:,} of {m['rows_per_message']} | {name} | {run['seconds']:.2f} s | {run['broker_cpu']:.2f} s | "
          f"{run['publisher_cpu']:.2f} s | {run['subscriber_cpu']:.2f} s | "
          f"{(run['broker_cpu'] + run['publisher_cpu'] + run['subscriber_cpu']) / (2 * run['seconds']):.0%} |"
          for m in r["mqtt"] for name, run in (("plain", m["plain"]), ("server", m["intake"]))],
        "",
        f"{big['rows']:,} rows appended over HTTP to a local store ({rate(big['fed'])}, {big['segments']:,} segments):",
        "",
        "| figure | value |",
        "|---|---|",
        f"| the rows' numbers ({big['columns']} columns of 8 bytes) | {numeric_mib:,.0f} MiB |",
        f"| peak resident memory of the server while the rows arrived (VmHWM) | {peak_mib:,.0f} MiB "
        f"({peak_mib - numeric_mib:+,.0f} MiB) |",
        f"| `least-squares` training, the fit alone (from the segments' statistics), median of 5 | {median['fit_ms']:.3f} ms |",
        f"| `least-squares` `/train?wait=true`, whole request with the model stored (fsync), median of 5 | "
        f"{median['request_ms']:.1f} ms (fastest {exact[0]['request_ms']:.1f} ms) |",
        f"| its MSE against the optimum from a pass over all the rows | relative difference {agreement:.1e} |",
        f"| that pass (`adam-standardized`, 1 epoch: the rows gathered, then solved over) | {big['pass_seconds']:.1f} s |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
