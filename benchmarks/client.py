"""The load generator: a separate process driven by the runner over stdin/stdout.

Each input line is a JSON burst: ``{"port", "seconds", "connections", "requests", "rate"}``
where ``requests`` is a list of ``[method, path, headers, body]`` used in rotation (each
connection starts at its own offset).  Each connection is a thread with one
``http.client.HTTPConnection`` (keep-alive when the server offers it; gunicorn's sync worker
closes after every response, and ``http.client`` reopens on the next request).  ``rate``
(requests/s per connection, 0 = as fast as the server answers) paces an attacker.

The answer line: ``{"count", "statuses", "latencies_ms", "per_second"}``.

A line with ``"mode": "list"`` sends each of its ``requests`` (``[port, method, path, headers,
body]``) exactly once, ``connections`` threads taking the next one in order (one connection:
strictly one after the other), and answers ``{"statuses", "codes", "latencies_ms"}`` aligned
with the requests (``codes``: the ``code`` member of a JSON body, or null).  The timing-parity
and two-server scenarios use it.

Standard library only, so the client costs the same against every stack.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter
from typing import Any


def _connection_loop(
    port: int,
    requests: list[list[Any]],
    offset: int,
    start: float,
    deadline: float,
    rate: float,
    out: dict[str, Any],
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    per_second: Counter[int] = Counter()
    n = len(requests)
    i = offset
    interval = 1.0 / rate if rate else 0.0
    next_at = time.perf_counter()
    while True:
        if interval:
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            next_at += interval
        began = time.perf_counter()
        if began >= deadline:
            break
        method, path, headers, body = requests[i % n]
        i += 1
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        ended = time.perf_counter()
        latencies.append((ended - began) * 1000)
        statuses[status] += 1
        per_second[int(ended - start)] += 1
    conn.close()
    out["latencies"] = latencies
    out["statuses"] = statuses
    out["per_second"] = per_second


def burst(spec: dict[str, Any]) -> dict[str, Any]:
    connections = int(spec.get("connections", 1))
    requests = spec["requests"]
    start = time.perf_counter()
    deadline = start + float(spec["seconds"])
    outs: list[dict[str, Any]] = [{} for _ in range(connections)]
    threads = [
        threading.Thread(
            target=_connection_loop,
            args=(
                spec["port"],
                requests,
                k * max(1, len(requests) // connections),
                start,
                deadline,
                float(spec.get("rate", 0) or 0),
                outs[k],
            ),
            daemon=True,
        )
        for k in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    statuses: Counter[int] = Counter()
    per_second: Counter[int] = Counter()
    latencies: list[float] = []
    for out in outs:
        statuses.update(out["statuses"])
        per_second.update(out["per_second"])
        latencies.extend(out["latencies"])
    seconds = int(spec["seconds"])
    return {
        "count": len(latencies),
        "elapsed": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
        "latencies_ms": [round(x, 4) for x in latencies],
        "per_second": [per_second.get(s, 0) for s in range(max(seconds, 1))],
    }


def _code(body: bytes) -> str | None:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def request_list(spec: dict[str, Any]) -> dict[str, Any]:
    """Each request once, in order, over ``connections`` threads; results aligned."""
    requests = spec["requests"]
    n = len(requests)
    statuses: list[int] = [0] * n
    codes: list[str | None] = [None] * n
    latencies: list[float] = [0.0] * n
    lock = threading.Lock()
    cursor = [0]
    deadline = time.monotonic() + float(spec.get("timeout", 600))

    def work() -> None:
        connections: dict[int, http.client.HTTPConnection] = {}
        while time.monotonic() < deadline:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= n:
                break
            port, method, path, headers, body = requests[i]
            conn = connections.get(port)
            if conn is None:
                conn = connections[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            began = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                statuses[i] = response.status
                codes[i] = _code(payload)
            except (OSError, http.client.HTTPException):
                conn.close()
            latencies[i] = (time.perf_counter() - began) * 1000
        for conn in connections.values():
            conn.close()

    threads = [
        threading.Thread(target=work, daemon=True)
        for _ in range(max(1, int(spec.get("connections", 1))))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "statuses": statuses,
        "codes": codes,
        "latencies_ms": [round(x, 4) for x in latencies],
    }


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        result = request_list(spec) if spec.get("mode") == "list" else burst(spec)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
