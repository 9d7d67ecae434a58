# A minimal WebSocket client for GET /v1/predict/ws (Python standard library only): sends each
# argument as a frame (text, or "binary:1,2.5" as little-endian f64 values) and prints each answer.
# Usage: python3 scripts/ws_predict.py HOST:PORT MESSAGE...
import base64, os, socket, struct, sys
host, port = sys.argv[1].split(":")
sock = socket.create_connection((host, int(port)))
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall((f"GET /v1/predict/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
reader = sock.makefile("rb")
while reader.readline() not in (b"\r\n", b""):
    pass
def send(opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0xFE]) + struct.pack(">H", len(payload)))
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
def receive():
    opcode, length = reader.read(2)
    length &= 0x7F
    if length == 126:
        length = struct.unpack(">H", reader.read(2))[0]
    return opcode & 0x0F, reader.read(length)
for message in sys.argv[2:]:
    if message.startswith("binary:"):
        send(2, b"".join(struct.pack("<d", float(v)) for v in message[7:].split(",")))
    else:
        send(1, message.encode())
    opcode, payload = receive()
    print(payload.decode() if opcode == 1 else "binary: " + ", ".join(str(v) for (v,) in struct.iter_unpack("<d", payload)))
