#!/usr/bin/env python3
"""The cluster benchmark of scripts/bench.sh: SeaweedFS, a trainer and three predictors (the
release binary) and nginx in front, all on loopback. Measures activation to served on every
predictor (100 activations), the store requests an idle predictor makes (counted by a proxy
between it and the store), and predict throughput through nginx against one predictor directly.
Writes cluster.json and cluster.md (the BENCHMARKS.md section) into the results directory.

Usage: cluster.py BINARY WEED NGINX WRK RESULTS [--quick]
"""

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BUCKET = "regserve-bench"
KEYS = {"AWS_ACCESS_KEY_ID": "regserve-bench", "AWS_SECRET_ACCESS_KEY": "regserve-bench-secret"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until(check, what, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"cluster.py: {what} did not come up within {limit} s")


class Counter:
    """A TCP proxy in front of the store that counts the HTTP requests passing through it."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, upstream_writer, True), self._pipe(upstream_reader, client_writer, False))

    async def _pipe(self, reader, writer, count):
        pending = b""
        try:
            while chunk := await reader.read(65536):
                if count:
                    # Every request has one Host header; JSON bodies never hold "\r\nhost:".
                    pending = (pending + chunk)[-8192:]
                    found = len(re.findall(rb"\r\nhost:", pending, re.IGNORECASE))
                    if found:
                        self.requests += found
                        pending = pending[pending.lower().rfind(b"\r\nhost:") + 7:]
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class Processes:
    """Processes a benchmark starts (their logs in the scratch directory), SeaweedFS among them."""

    def __init__(self, scratch):
        self.scratch, self.procs = Path(scratch), []

    def spawn(self, args, env=None, log="log"):
        out = open(self.scratch / f"{log}.log", "ab")
        proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def start_weed(self, weed):
        p = self.weed_ports = [free_port() for _ in range(10)]
        self.s3 = p[6]
        data = self.scratch / "weed"
        data.mkdir()
        self.spawn([weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
                    f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
                    f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
                    "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", f"-admin.port={p[8]}",
                    f"-admin.port.grpc={p[9]}", "-webdav=false", f"-bucket={BUCKET}"], KEYS, "weed")

    def stop(self):
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Cluster(Processes):
    def __init__(self, binary, weed, nginx, scratch):
        super().__init__(scratch)
        self.binary = binary
        self.start_weed(weed)
        self.counter = Counter(self.s3)
        self.trainer_port = free_port()
        self.predictor_ports = [free_port() for _ in range(3)]
        self.store_url = f"s3://{BUCKET}/bench"
        self.node("trainer", self.trainer_port, self.s3)
        # The first predictor reaches the store through the counting proxy.
        for index, port in enumerate(self.predictor_ports):
            self.node("predictor", port, self.counter.port if index == 0 else self.s3)
        self.nginx_port = free_port()
        self.start_nginx(nginx)

    def node(self, role, port, s3_port):
        env = {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "AWS_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true", "RUST_LOG": "warn"}
        args = [self.binary, "--role", role, "--store", self.store_url, "--addr", f"127.0.0.1:{port}",
                "--trainer-url", f"http://127.0.0.1:{self.trainer_port}", "--keep-models", "1000"]
        # The trainer must find the bucket: SeaweedFS makes it a moment after it first answers.
        wait_until(lambda: self.spawn_and_check(args, env, role, port), f"the {role} on port {port}")

    def spawn_and_check(self, args, env, role, port):
        proc = self.spawn(args, env, f"{role}-{port}")
        deadline = time.time() + 10
        while time.time() < deadline:
            if proc.poll() is not None:
                self.procs.remove(proc)
                time.sleep(0.5)
                return False
            try:
                if http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def start_nginx(self, nginx):
        servers = " ".join(f"server 127.0.0.1:{port};" for port in self.predictor_ports)
        site = (Path(__file__).resolve().parents[2] / "docs" / "cluster" / "nginx.conf").read_text()
        site = (site.replace("@TRAINER@", f"127.0.0.1:{self.trainer_port}").replace("@PREDICTORS@", servers)
                .replace("@LISTEN@", f"127.0.0.1:{self.nginx_port}"))
        d = self.scratch
        (d / "nginx.conf").write_text(f"""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
{site}
}}
""")
        self.spawn([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)], log="nginx")
        wait_until(lambda: http("GET", f"http://127.0.0.1:{self.nginx_port}/healthz")[0] == 200, "nginx")


def served(port):
    status, body = http("GET", f"http://127.0.0.1:{port}/v1/model?history=none")
    return body.get("version") if status == 200 else None


def activations(cluster, count):
    trainer = f"http://127.0.0.1:{cluster.trainer_port}"
    for seed in (1, 2):
        http("POST", f"{trainer}/train?wait=true", {"epochs": 2, "seed": seed})
    waits = []
    for round_ in range(count):
        version = 1 + round_ % 2
        # A random pause, so that activations fall at every point of the predictors' poll cycle
        # rather than just after the poll that saw the previous one.
        time.sleep(random.uniform(0, 0.3))
        status, _ = http("POST", f"{trainer}/v1/models/regserve/versions/{version}/activate")
        assert status == 200, status
        acknowledged = time.perf_counter()
        pending = set(cluster.predictor_ports)
        while pending:
            pending = {port for port in pending if served(port) != version}
            if time.perf_counter() - acknowledged > 5:
                sys.exit(f"cluster.py: v{version} not served everywhere within 5 s")
            time.sleep(0.001)
        waits.append((time.perf_counter() - acknowledged) * 1e3)
    return waits


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(cluster, wrk_binary, url, seconds):
    """A wrk run, with the CPU seconds nginx and the predictors used meanwhile."""
    groups = {"nginx": [p for p in cluster.procs if "nginx" in str(p.args[0])],
              "predictors": [p for p in cluster.procs if "predictor" in p.args]}
    before = {name: sum(cpu_seconds(p.pid) for p in procs) for name, procs in groups.items()}
    run = wrk(wrk_binary, url, seconds)
    run["cpu"] = {name: sum(cpu_seconds(p.pid) for p in procs) - before[name] for name, procs in groups.items()}
    run["cpu_per_request_us"] = {name: cpu / (run["rate"] * seconds) * 1e6 for name, cpu in run["cpu"].items()}
    return run


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wrk(wrk_binary, url, seconds, connections=64, body='{"x_predict":[15.5]}'):
    """A wrk run of POST `body` (a GET when it is empty) at `connections`."""
    script = Path(__file__).with_name("wrk.lua")
    env = {**os.environ, "WRK_BODY": body}
    out = subprocess.run([wrk_binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         env=env, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return {"rate": rate, "p99_ms": float(p99.group(1)) * scale, "non2xx": "Non-2xx" in out}


def main():
    binary, weed, nginx, wrk_binary, results = sys.argv[1:6]
    quick = "--quick" in sys.argv
    res = Path(results)
    scratch = tempfile.mkdtemp(prefix="regserve-cluster-")
    cluster = Cluster(binary, weed, nginx, scratch)
    try:
        count = 20 if quick else 100
        waits = activations(cluster, count)
        idle_seconds = 10 if quick else 30
        time.sleep(2)
        before = cluster.counter.requests
        time.sleep(idle_seconds)
        per_minute = (cluster.counter.requests - before) * 60 / idle_seconds
        seconds = 2 if quick else 5
        through = f"http://127.0.0.1:{cluster.nginx_port}/predict"
        direct = f"http://127.0.0.1:{cluster.predictor_ports[1]}/predict"
        rounds = []
        for _ in range(1 if quick else 3):
            rounds.append({"balancer": measured(cluster, wrk_binary, through, seconds),
                           "direct": measured(cluster, wrk_binary, direct, seconds)})
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"activations": waits, "idle_seconds": idle_seconds, "store_requests_per_minute": per_minute,
              "throughput": rounds, "wrk_seconds": seconds}
    (res / "cluster.json").write_text(json.dumps(result, indent=1))
    (res / "cluster.md").write_text(markdown(result))
    print(f"    activation to served on all 3: p50 {statistics.median(waits):.1f} ms, p99 {percentile(waits, 0.99):.1f} ms")
    print(f"    store requests per minute, idle predictor: {per_minute:.0f}")
    for r in rounds:
        print(f"    predict via nginx (3 predictors) {r['balancer']['rate']:,.0f} req/s, one predictor directly {r['direct']['rate']:,.0f} req/s")


def median_cpu(rounds, run, group):
    return statistics.median(x[run]["cpu_per_request_us"][group] for x in rounds)


def markdown(r):
    waits, rounds = r["activations"], r["throughput"]
    through = statistics.median(x["balancer"]["rate"] for x in rounds)
    direct = statistics.median(x["direct"]["rate"] for x in rounds)
    lines = [
        "### A cluster: one trainer, three predictors, nginx",
        "",
        "SeaweedFS (`weed mini`) as the store, a trainer and three predictors (the release binary, defaults: "
        "`--follow-interval 200ms`, `--heartbeat-interval 5s`) and nginx in front, configured as the README's "
        "\"Running a cluster\", all on the same two cores as the load. The first predictor reaches the store through "
        "a proxy that counts its requests. Made by `scripts/bench/cluster.py`.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| activation to served by all three predictors, over {len(waits)} activations (from the trainer's 200 to "
        f"the last predictor's `/v1/model` naming the version) | p50 {statistics.median(waits):.0f} ms, "
        f"p99 {percentile(waits, 0.99):.0f} ms, max {max(waits):.0f} ms |",
        f"| store requests of an idle predictor (counted over {r['idle_seconds']} s) | "
        f"{r['store_requests_per_minute']:.0f} per minute |",
        f"| `/predict` at 64 connections through nginx to 3 predictors (wrk, {r['wrk_seconds']} s, median of "
        f"{len(rounds)}) | {through:,.0f} req/s |",
        f"| `/predict` at 64 connections to one predictor directly | {direct:,.0f} req/s |",
        f"| through nginx / directly | {through / direct:.2f}x |",
        "",
        "CPU per request, median of the rounds: through nginx, "
        f"{median_cpu(rounds, 'balancer', 'nginx'):.0f} µs in nginx and {median_cpu(rounds, 'balancer', 'predictors'):.0f} µs "
        f"in the predictors; directly, {median_cpu(rounds, 'direct', 'predictors'):.0f} µs in the predictor. The rest of "
        "the two cores went to wrk and the kernel.",
        "",
        "Throughput rounds (nginx, direct): " + "; ".join(
            f"{x['balancer']['rate']:,.0f} and {x['direct']['rate']:,.0f} req/s, p99 {x['balancer']['p99_ms']:.2f} and "
            f"{x['direct']['p99_ms']:.2f} ms" for x in rounds) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
