#!/usr/bin/env python3
"""Hostile clients for scripts/bench.sh (standard library only).

  hold PORT SERVER_PID DIR TOTAL JOB
      Holds TOTAL connections of several hostile kinds (see KINDS) open on the server at PORT,
      opening each again a moment after the server closes it, until DIR/stop exists. Writes
      DIR/ready once every connection has been opened, samples once a second how many of each
      kind the server holds (its side of the connection established, read from /proc/net/tcp),
      its VmRSS and its open files, marking the samples taken while DIR/measure exists. JOB is a
      running training job whose event stream some connections follow. Prints a JSON summary.

  unread PORT SERVER_PID CLIENTS VALUES SECONDS
      CLIENTS connections, each with a small receive buffer, send one POST /predict of VALUES
      values at once and never read the answer. For SECONDS, samples the server's VmRSS every
      100 ms and times a GET /healthz on a new connection every 100 ms. Then peeks (MSG_PEEK, so
      nothing is taken from the socket) at each answer's status line. Prints a JSON summary.
"""

import asyncio
import json
import os
import random
import resource
import socket
import statistics
import struct
import sys
import threading
import time

HOST = "127.0.0.1"
# A trickled body or head sends one byte every 2 to 4 s.
TRICKLE_S = (2.0, 4.0)
# How long a closed connection waits before it is opened again; longer after a 503 (a limit).
REOPEN_S = (0.3, 0.8)
BUSY_REOPEN_S = (1.0, 2.0)
# Asked receive buffer of the connections that never read (the kernel doubles it, and keeps a
# floor of a few KiB).
SMALL_RCVBUF = 4096
# New connections per second while the held ones are first opened.
RAMP_PER_S = 500
# Values in each large /predict of the unread-predict kind: its answer (about 22 bytes a value,
# 4.4 MB) is more than the kernel's send buffer takes (up to tcp_wmem's 4 MiB), so the server's
# write of it stalls, and 40 of them (1 MB of body and 4.4 MB of answer each) stay within the
# server's --max-buffered (256 MiB).
UNREAD_PREDICT_VALUES = 200_000

# The mix for 2,000 connections: streams and downloads stay below the server's --max-streams
# (128), uploads go a little over its --max-uploads (4); the rest is split by share. Trickled
# bodies declare less than 64 KiB, which the server's memory budget does not count, so what ends
# them is the minimum body rate.
FIXED_2000 = {"events": 60, "unread-dataset": 60, "unread-predict": 40, "trickle-upload": 8}
SHARES = {"trickle-train": 0.2, "trickle-predict": 0.2, "partial-head": 0.3, "idle-keepalive": 0.3}
KINDS = {
    "trickle-train": "POST /train, Content-Length 50000, body trickled one byte every 2-4 s",
    "trickle-predict": "POST /predict, Content-Length 50000, body trickled one byte every 2-4 s",
    "trickle-upload": "POST /upload, multipart, Content-Length 1000000, body trickled one byte every 2-4 s",
    "partial-head": "a request head that never ends: one more header byte every 2-4 s",
    "idle-keepalive": "one GET /healthz answered and read, then nothing",
    "unread-dataset": "GET /v1/dataset.csv with a small receive buffer, never read",
    "unread-predict": f"POST /predict of {UNREAD_PREDICT_VALUES:,} values with a small receive buffer, never read",
    "events": "GET /v1/jobs/{id}/events on the running job, read as it comes",
}


def mix(total):
    scale = total / 2000
    counts = {kind: max(1, round(n * scale)) for kind, n in FIXED_2000.items()}
    rest = max(0, total - sum(counts.values()))
    shared = {kind: int(rest * share) for kind, share in SHARES.items()}
    shared["idle-keepalive"] += rest - sum(shared.values())
    counts.update(shared)
    return {kind: counts[kind] for kind in KINDS}


def raise_open_files(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))  # root may raise the hard limit
            return needed
        except (ValueError, OSError):
            sys.exit(f"hostile: {needed} open files are needed and the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def server_status(pid):
    """VmRSS in KiB and the number of open files of the server."""
    rss = None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        files = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None, None
    return rss, files


def server_side(port):
    """Remote ports of the connections whose server side (local port PORT) is established."""
    held = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                held.add(int(remote.rsplit(":", 1)[1], 16))
    return held


def close_hard(sock):
    """Closes with a reset, so that the server's side goes at once instead of lingering."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def status_of(data):
    """The status code of an answer's first bytes, as text ("200"), or "?"."""
    if data.startswith(b"HTTP/1.1 ") and len(data) >= 12:
        return data[9:12].decode("ascii", "replace")
    return "?"


# ---------------------------------------------------------------------------------------------
# hold


class Holder:
    def __init__(self, port, pid, folder, total, job):
        self.port, self.pid, self.folder, self.job = port, pid, folder, job
        self.counts = mix(total)
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.conns = {}  # local port -> (kind, server-closed event, opened at)
        self.held_ports = set()
        self.stats = {kind: {"opened": 0, "outcomes": {}, "connect_errors": 0} for kind in KINDS}
        self.samples = []
        self.started = time.monotonic()
        self.opened_once = 0
        predict = b'{"x_predict":[' + b",".join([b"15.5"] * UNREAD_PREDICT_VALUES) + b"]}"
        self.requests = {
            "trickle-train": self.head("POST", "/train", "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n"),
            "trickle-predict": self.head("POST", "/predict", "Content-Type: application/json\r\nContent-Length: 50000\r\n\r\n"),
            "trickle-upload": self.head(
                "POST", "/upload", "Content-Type: multipart/form-data; boundary=hostile\r\nContent-Length: 1000000\r\n\r\n"),
            "partial-head": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            "idle-keepalive": self.head("GET", "/healthz", "\r\n"),
            "unread-dataset": self.head("GET", "/v1/dataset.csv", "\r\n"),
            "unread-predict": self.head(
                "POST", "/predict", f"Content-Type: application/json\r\nContent-Length: {len(predict)}\r\n\r\n") + predict,
            "events": self.head("GET", f"/v1/jobs/{job}/events", "Accept: text/event-stream\r\n\r\n"),
        }
        self.trickles = {
            "trickle-train": b'{"epochs": 1' + b" " * 200_000,
            "trickle-predict": b'{"x_predict": [1' + b" " * 200_000,
            "trickle-upload": b'--hostile\r\nContent-Disposition: form-data; name="file"; filename="slow.csv"\r\n\r\n'
                              + b"Education,Income\n" + b"1,2\n" * 100_000,
            "partial-head": b"X-Slow: " + b"a" * 200_000,
        }

    @staticmethod
    def head(method, path, rest):
        return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{rest}".encode()

    def outcome(self, kind, what):
        outcomes = self.stats[kind]["outcomes"]
        outcomes[what] = outcomes.get(what, 0) + 1

    async def slot(self, kind, delay):
        await asyncio.sleep(delay)
        first = True
        while not self.stopping.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            if kind.startswith("unread"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
            pause = REOPEN_S
            try:
                await self.loop.sock_connect(sock, (HOST, self.port))
            except OSError:
                self.stats[kind]["connect_errors"] += 1
                close_hard(sock)
                await self.sleep(BUSY_REOPEN_S)
                continue
            local = sock.getsockname()[1]
            closed = asyncio.Event()
            self.conns[local] = (kind, closed, time.monotonic())
            self.stats[kind]["opened"] += 1
            if first:
                self.opened_once += 1
                first = False
            try:
                what = await self.run(kind, sock, closed)
            except (ConnectionResetError, BrokenPipeError):
                what = "reset"
            except OSError as error:
                what = type(error).__name__
            except asyncio.CancelledError:
                what = None
            self.conns.pop(local, None)
            close_hard(sock)
            if what is None:
                return
            self.outcome(kind, what)
            if what == "503":
                pause = BUSY_REOPEN_S
            await self.sleep(pause)

    async def sleep(self, span):
        try:
            await asyncio.wait_for(self.stopping.wait(), random.uniform(*span))
        except asyncio.TimeoutError:
            pass

    async def run(self, kind, sock, closed):
        loop = self.loop
        await loop.sock_sendall(sock, self.requests[kind])
        if kind in self.trickles:
            body = self.trickles[kind]
            reader = asyncio.ensure_future(loop.sock_recv(sock, 4096))
            try:
                for i in range(len(body)):
                    done, _ = await asyncio.wait({reader}, timeout=random.uniform(*TRICKLE_S))
                    if done:
                        data = reader.result()
                        return status_of(data) if data else "closed"
                    await loop.sock_sendall(sock, body[i:i + 1])
                return "body sent"
            finally:
                reader.cancel()
        if kind == "idle-keepalive":
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    return "closed before the answer"
                data += chunk
            if status_of(data) != "200":
                return status_of(data)
            while await loop.sock_recv(sock, 4096):
                pass
            return "closed"
        if kind == "events":
            data = await loop.sock_recv(sock, 65536)
            if not data:
                return "closed before the answer"
            if status_of(data) != "200":
                return status_of(data)
            while await loop.sock_recv(sock, 65536):
                pass
            return "stream ended"
        # Never read: peek at the status line once, then wait for the server to close its side.
        await asyncio.sleep(1.0)
        try:
            peeked = sock.recv(16, socket.MSG_PEEK)
            status = status_of(peeked) if peeked else "nothing"
        except BlockingIOError:
            status = "nothing"
        await closed.wait()
        return f"{status}, closed by the server"

    async def scan(self):
        measure = os.path.join(self.folder, "measure")
        while not self.stopping.is_set():
            now = time.monotonic()
            held = server_side(self.port)
            by_kind = dict.fromkeys(KINDS, 0)
            for local, (kind, closed, opened) in list(self.conns.items()):
                if local in held:
                    by_kind[kind] += 1
                elif now - opened > 1.0 and kind.startswith("unread"):
                    closed.set()
            rss, files = server_status(self.pid)
            self.samples.append({
                "t": round(now - self.started, 2),
                "measuring": os.path.exists(measure),
                "held": by_kind,
                "total": sum(by_kind.values()),
                "open": len(self.conns),
                "server_rss_kb": rss,
                "server_files": files,
            })
            await self.sleep((1.0, 1.0))

    async def control(self):
        ready = os.path.join(self.folder, "ready")
        stop = os.path.join(self.folder, "stop")
        total = sum(self.counts.values())
        patience = total / RAMP_PER_S + 10
        while not os.path.exists(stop):
            opened = self.opened_once >= total or time.monotonic() - self.started > patience
            if opened and not os.path.exists(ready):
                self.ramp_s = time.monotonic() - self.started
                open(ready, "w").close()
            await asyncio.sleep(0.1)
        self.stopping.set()

    async def main(self):
        self.ramp_s = None
        order = [kind for kind, n in self.counts.items() for _ in range(n)]
        random.shuffle(order)
        tasks = [asyncio.ensure_future(self.slot(kind, i / RAMP_PER_S)) for i, kind in enumerate(order)]
        scanner = asyncio.ensure_future(self.scan())
        await self.control()
        await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, scanner, return_exceptions=True)
        return self.summary()

    def summary(self):
        during = [s for s in self.samples if s["measuring"]] or self.samples

        def spread(values):
            values = sorted(values)
            return {"min": values[0], "median": statistics.median(values), "max": values[-1]} if values else None

        kinds = {}
        for kind, n in self.counts.items():
            kinds[kind] = dict(self.stats[kind], target=n, what=KINDS[kind],
                               held=spread([s["held"][kind] for s in during]))
        return {
            "target": sum(self.counts.values()),
            "ramp_s": self.ramp_s,
            "samples_measuring": sum(1 for s in self.samples if s["measuring"]),
            "held": spread([s["total"] for s in during]),
            "server_rss_kb": spread([s["server_rss_kb"] for s in during if s["server_rss_kb"]]),
            "server_files": spread([s["server_files"] for s in during if s["server_files"]]),
            "kinds": kinds,
            "timeline": self.samples,
        }


def cmd_hold(port, pid, folder, total, job):
    port, pid, total = int(port), int(pid), int(total)
    limit = raise_open_files(total + 512)
    print(f"hostile: open-file limit {limit}", file=sys.stderr)

    async def run():
        return await Holder(port, pid, folder, total, job).main()

    result = asyncio.run(run())
    result["client_open_files_limit"] = limit
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# unread


def healthz_once(port, timeout=10.0):
    start = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        return time.perf_counter() - start, status_of(data)
    except OSError as error:
        return time.perf_counter() - start, type(error).__name__


def cmd_unread(port, pid, clients, values, seconds):
    port, pid, clients, values, seconds = int(port), int(pid), int(clients), int(values), float(seconds)
    raise_open_files(clients + 64)
    body = b'{"x_predict":[' + b",".join([b"15.25"] * values) + b"]}"
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    socks = [None] * clients
    sent = [None] * clients
    start_gate = threading.Barrier(clients + 1)
    started = time.perf_counter()

    def client(i):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        sock.settimeout(seconds)
        socks[i] = sock
        start_gate.wait()
        try:
            sock.connect((HOST, port))
            sock.sendall(head)
            sock.sendall(body)
            sent[i] = {"sent": True, "seconds": time.perf_counter() - started}
        except OSError as error:
            sent[i] = {"sent": False, "error": type(error).__name__, "seconds": time.perf_counter() - started}

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()

    probes = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            elapsed, status = healthz_once(port)
            probes.append({"t": round(time.perf_counter() - started, 3), "s": elapsed, "status": status})
            stop.wait(max(0.0, 0.1 - elapsed))

    started = time.perf_counter()
    start_gate.wait()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    rss, timeline = [], []
    while time.perf_counter() - started < seconds:
        value = server_status(pid)[0]
        if value:
            rss.append(value)
            timeline.append([round(time.perf_counter() - started, 2), value])
        time.sleep(0.1)
    stop.set()
    prober.join(timeout=15)
    for thread in threads:
        thread.join(timeout=1)

    statuses = {}
    for i, sock in enumerate(socks):
        status = "nothing"
        try:
            sock.setblocking(False)
            peeked = sock.recv(16, socket.MSG_PEEK)
            status = status_of(peeked) if peeked else "closed"
        except BlockingIOError:
            pass
        except OSError as error:
            status = type(error).__name__
        statuses[status] = statuses.get(status, 0) + 1
    rss_open = server_status(pid)[0]
    for sock in socks:
        close_hard(sock)
    time.sleep(1.0)
    rss_closed = server_status(pid)[0]
    times = [p["s"] for p in probes if p["status"] == "200"]
    print(json.dumps({
        "clients": clients,
        "values": values,
        "body_bytes": len(body),
        "seconds": seconds,
        "sent": sum(1 for s in sent if s and s["sent"]),
        "send_errors": {e: sum(1 for s in sent if s and s.get("error") == e) for e in {s.get("error") for s in sent if s} if e},
        "last_send_s": max((s["seconds"] for s in sent if s and s["sent"]), default=None),
        "statuses": statuses,
        "max_rss_kb": max(rss) if rss else None,
        "rss_samples": len(rss),
        "rss_end_kb": rss_open,
        "rss_after_close_kb": rss_closed,
        "timeline": timeline,
        "healthz": {
            "probes": len(probes),
            "ok": len(times),
            "failed": len(probes) - len(times),
            "max_s": max((p["s"] for p in probes), default=None),
            "median_s": statistics.median(times) if times else None,
        },
    }))


def main(argv):
    commands = {"hold": cmd_hold, "unread": cmd_unread}
    if len(argv) < 2 or argv[1] not in commands:
        sys.exit(__doc__)
    commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
