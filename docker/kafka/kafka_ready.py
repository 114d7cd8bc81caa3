#!/usr/bin/python3 -IS
"""Kafka readiness probe: the broker answers Metadata listing at least one broker.

Exits 0 when it does, else prints why and exits 1.

Usage: kafka-ready [HOST:PORT]   (default 127.0.0.1:9092; timeout KAFKA_READY_TIMEOUT, 2 s)

Speaks the wire protocol with the stdlib only (the image has python3-minimal). It sends
Metadata v4, the last version before the "flexible" encoding (v9+), so plain int16-length
strings and int32-length arrays suffice. Kafka 4.0 removed old versions of several APIs
(KIP-896); 4.1.1 still answers Metadata v0-v13 (checked via ApiVersions), and v4 is far from
that floor. A broker lists only registered, unfenced brokers: that is "ready" here.
"""

import os
import socket
import struct
import sys

METADATA_KEY, METADATA_VERSION = 3, 4
CORRELATION_ID = 7
CLIENT_ID = b"kafka-ready"


def metadata_request() -> bytes:
    """Request header v1 + Metadata v4 body asking for no topics (an empty, non-null list)."""
    header = struct.pack(">hhih", METADATA_KEY, METADATA_VERSION, CORRELATION_ID, len(CLIENT_ID))
    body = struct.pack(">i?", 0, False)  # topics: [], allow_auto_topic_creation: false
    message = header + CLIENT_ID + body
    return struct.pack(">i", len(message)) + message


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes: a short read would misparse the response."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed before a full response")
        data += chunk
    return data


def brokers(host: str, port: int, timeout: float) -> list[str]:
    """Return the brokers ("id@host:port") listed in the Metadata response."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(metadata_request())
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        payload = recv_exact(sock, size)
    correlation_id, _throttle_ms, count = struct.unpack_from(">iii", payload)
    if correlation_id != CORRELATION_ID:
        raise ValueError(f"unexpected correlation id {correlation_id}")
    offset, found = 12, []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", payload, offset)
        offset += 6
        broker_host = payload[offset : offset + host_len].decode()
        offset += host_len
        broker_port, rack_len = struct.unpack_from(">ih", payload, offset)
        offset += 6 + max(rack_len, 0)  # rack is a nullable string (-1 = null)
        found.append(f"{node_id}@{broker_host}:{broker_port}")
    return found


def main(argv: list[str]) -> int:
    """Probe once; the exit code is the verdict docker's healthcheck reads."""
    host, _, port = (argv[1] if len(argv) > 1 else "127.0.0.1:9092").rpartition(":")
    timeout = float(os.environ.get("KAFKA_READY_TIMEOUT", "2"))
    try:
        found = brokers(host, int(port), timeout)
    except (OSError, ValueError, struct.error) as exc:
        print(f"not ready: {host}:{port}: {exc}")
        return 1
    if not found:
        print(f"not ready: {host}:{port} answered Metadata with no brokers")
        return 1
    print("ready: brokers " + ", ".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
