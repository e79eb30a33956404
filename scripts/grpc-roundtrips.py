#!/usr/bin/env python3
"""NodeGetCapabilities round trips per second from one independent gRPC client (Python grpcio).

Usage: grpc-roundtrips.py SOCKET_PATH SECONDS
Prints one JSON object: {"calls": N, "seconds": S, "per_second": R}. Needs `pip install grpcio`.
The request and response are empty messages, so no generated stubs are needed: bytes go through unchanged.
"""
import json
import sys
import time

import grpc


def main() -> None:
    socket_path, seconds = sys.argv[1], float(sys.argv[2])
    channel = grpc.insecure_channel(f"unix://{socket_path}")
    call = channel.unary_unary(
        "/csi.v1.Node/NodeGetCapabilities",
        request_serializer=lambda message: message,
        response_deserializer=lambda message: message,
    )
    for _ in range(200):  # connection set-up and warm-up
        call(b"", timeout=5)
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        call(b"", timeout=5)
        calls += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"calls": calls, "seconds": elapsed, "per_second": calls / elapsed}))
    channel.close()


if __name__ == "__main__":
    main()
