"""An open-loop HTTP load generator: requests are due at a constant rate whether or not
earlier ones have answered, and each latency counts from when its request was due, so
queueing in the server is not hidden (no coordinated omission).

    python benchmarks/_openloop.py --url http://127.0.0.1:PORT/path --body-file body.json \
        --rate 800 --seconds 20 [--connections 64] [--warm-up 2]

Loopback only, bounded by ``--seconds``; prints one JSON object. Run it as its own
process (the benchmarks pin it) so the server's cores are not the client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import numpy as np

SLOW_MS = 100.0
"""Requests slower than this are counted (``over_100ms``): a tail the p99 can hide."""


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def run(
    url: str, body: bytes, rate: float, seconds: float, connections: int, warm_up: float
) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback addresses only")
    raw = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    due: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal errors
        while (scheduled := await due.get()) is not None:
            try:
                status = await _request(reader, writer, raw)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            if status != 200:
                errors += 1
            elif scheduled >= recorded_from:
                latencies.append(time.perf_counter() - scheduled)
        writer.close()

    # Connect first, so connection set-up is not counted against the server.
    opened = [await asyncio.open_connection(host, port) for _ in range(connections)]
    workers = [asyncio.create_task(connection(*pair)) for pair in opened]
    start = time.perf_counter()
    recorded_from = start + warm_up
    total = int(rate * seconds)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(scheduled)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 60)
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([float("nan")])
    return {
        "rate": rate,
        "sent": total,
        "recorded": len(latencies),
        "errors": errors,
        "achieved_rps": (total - errors) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "p999_ms": float(np.percentile(ms, 99.9)),
        "max_ms": float(ms.max()),
        "over_100ms": int((ms > SLOW_MS).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warm-up", type=float, default=2.0, help="seconds sent but not recorded")
    args = parser.parse_args()
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    result = asyncio.run(
        run(args.url, body, args.rate, args.seconds, args.connections, args.warm_up)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
