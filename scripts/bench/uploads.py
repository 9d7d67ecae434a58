#!/usr/bin/env python3
"""Uploads of generated CSV files for scripts/bench.sh (standard library only). The file is made
on the fly and streamed as a multipart POST /upload with its Content-Length, so nothing is
written to disk on the client's side.

  send PORT KIND BYTES COUNT
      COUNT uploads of a BYTES-byte file of shape KIND at once, each on its own connection.
      Prints a JSON summary: the file's shape and, per upload, the status, the time to the
      answer, the bytes sent before it and the error message.

Shapes (KIND):
  wide         a header of 200 columns c1..c200, then rows of 200 numbers (2,000 bytes a row)
  line         one line and nothing else: a single value of BYTES bytes, no newline
  line-fields  a header Education,Income, then one line of BYTES short fields (1,1,1,...)
  line-quoted  a header Education,Income, then a quoted value that never closes
"""

import json
import random
import select
import socket
import sys
import threading
import time

BOUNDARY = "regservebenchboundary"
BLOCK = 1 << 20
WIDE_COLUMNS = 200


def shape(kind, size):
    """(header, repeated block, tail length, rows, numeric columns): the file is the header, then
    the block repeated, cut to SIZE bytes in all."""
    if kind == "wide":
        header = (",".join(f"c{i}" for i in range(1, WIDE_COLUMNS + 1)) + "\n").encode()
        rng = random.Random(1)
        # Every value has 9 characters (dd.dddddd), so every row has the same length.
        rows = [(",".join(f"{rng.uniform(10, 99.99):.6f}" for _ in range(WIDE_COLUMNS)) + "\n").encode()
                for _ in range(512)]
        row_bytes = len(rows[0])
        assert all(len(row) == row_bytes for row in rows)
        count = (size - len(header)) // row_bytes
        return header, b"".join(rows), count * row_bytes, count, WIDE_COLUMNS
    if kind == "line":
        return b"", b"1" * BLOCK, size, 0, 0
    if kind == "line-fields":
        header = b"Education,Income\n"
        return header, b"1," * (BLOCK // 2), size - len(header), 0, 0
    if kind == "line-quoted":
        header = b'Education,Income\n"'
        return header, b"1" * BLOCK, size - len(header), 0, 0
    sys.exit(f"uploads: unknown shape {kind}")


def pieces(kind, header, block, length):
    preamble = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{kind}.csv\"\r\n"
                "Content-Type: text/csv\r\n\r\n").encode()
    yield preamble + header
    view = memoryview(block)
    left = length
    while left > 0:
        n = min(left, len(block))
        yield view[:n]
        left -= n
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def read_answer(sock, data, deadline):
    """Reads the rest of an answer whose first bytes are DATA: (status, body)."""
    while b"\r\n\r\n" not in data:
        if time.monotonic() > deadline:
            raise TimeoutError("no answer")
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            select.select([sock], [], [], 1.0)
            continue
        if not chunk:
            break
        body += chunk
    return status, body


def upload(port, kind, size, result, gate):
    header, block, length, _, _ = shape(kind, size)
    parts = list(pieces(kind, header, block, length))
    total = sum(len(part) for part in parts)
    sock = socket.create_connection(("127.0.0.1", port))
    request = (f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {total}\r\n\r\n").encode()
    gate.wait()
    start = time.perf_counter()
    deadline = time.monotonic() + 600
    sock.sendall(request)
    sock.setblocking(False)
    sent, answer, answered, all_sent_at, error = 0, b"", False, None, None
    try:
        for part in parts:
            view = memoryview(part)
            while view:
                readable, writable, _ = select.select([sock], [sock], [], 30)
                if readable:  # an answer (or a close) before the whole body was sent
                    answer, answered = sock.recv(65536), True
                    break
                if writable:
                    n = sock.send(view)
                    sent += n
                    view = view[n:]
            if answered:
                break
        else:
            all_sent_at = time.perf_counter()
            select.select([sock], [], [], 600)
            answer, answered = sock.recv(65536), True
    except OSError as failure:  # the server answered and closed while the body was on its way
        error = type(failure).__name__
        try:
            answer = answer or sock.recv(65536)
        except OSError:
            pass
    sock.setblocking(True)
    sock.settimeout(30)
    status, body = None, b""
    if answer:
        try:
            status, body = read_answer(sock, answer, deadline)
        except OSError as failure:
            error = error or type(failure).__name__
    answered_at = time.perf_counter()
    sock.close()
    message = None
    try:
        message = json.loads(body).get("error")
    except ValueError:
        message = body.decode("utf-8", "replace") if body else None
    result.update({
        "status": status,
        "seconds": answered_at - start,
        "sent_bytes": sent,
        "request_bytes": total,
        "all_sent": all_sent_at is not None,
        "after_last_byte_s": (answered_at - all_sent_at) if all_sent_at else None,
        "message": message,
        "message_chars": len(message) if message else 0,
        "body_bytes": len(body),
        "error": error,
    })


def cmd_send(port, kind, size, count):
    port, size, count = int(port), int(size), int(count)
    _, _, length, rows, columns = shape(kind, size)
    header_bytes = len(shape(kind, size)[0])
    results = [{} for _ in range(count)]
    gate = threading.Barrier(count)
    threads = [threading.Thread(target=upload, args=(port, kind, size, results[i], gate)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({
        "kind": kind,
        "file_bytes": header_bytes + length,
        "rows": rows,
        "columns": columns,
        "numeric_bytes": rows * columns * 8,
        "count": count,
        "uploads": results,
    }))


def main(argv):
    if len(argv) != 6 or argv[1] != "send":
        sys.exit(__doc__)
    cmd_send(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
