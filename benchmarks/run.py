"""Benchmark auth401 against bare DRF + simplejwt and django-axes.

    .venv/bin/python -m benchmarks.run            # everything on PostgreSQL + Redis (~35 min)
    .venv/bin/python -m benchmarks.run --quick    # a smoke run of a few minutes

Each stack runs behind its own gunicorn (one sync worker, 127.0.0.1, its own port and its own
database).  For every scenario the stacks take turns in short bursts (``--round-seconds``),
in a rotating order, until each has had ``--seconds`` of load; a stack's ratio to bare is the
median of the per-round ratios, so a CPU that speeds up or slows down between bursts cancels
out.  Then: a failed-login flood (``--flood-minutes``) printing throughput per minute and the
table and Redis sizes before and after, and a legitimate user's p50 on ``/api/me/`` idle and
while another process floods failed logins against other accounts.  Then timing parity
(refusals of locked real accounts against locked unknown names, and the attempts that lock
them) and two gunicorn masters sharing PostgreSQL + Redis under one account's flood.  See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
PYTHON = sys.executable

SCENARIOS = ["valid_jwt", "tampered_jwt", "no_credentials", "failed_basic", "failed_token"]
SCENARIO_TITLES = {
    "valid_jwt": "valid JWT, GET /api/me/",
    "tampered_jwt": "tampered JWT, GET /api/me/",
    "no_credentials": "no credentials, GET /api/me/",
    "failed_basic": "failed login, Basic on GET /api/me/",
    "failed_token": "failed login, POST /api/token/",
}
#: the targets (ratio to bare, PostgreSQL + Redis)
TARGETS = {
    "valid_jwt": 0.97,
    "tampered_jwt": 0.95,
    "no_credentials": 0.95,
    "failed_basic": 0.85,
    "failed_token": 0.85,
}
#: a legitimate user's p50 during a flood over its idle p50, at most (and at most bare's own)
ATTACK_TARGET = 1.2
FLOOD_TARGET = 0.95
#: the path each failed-login scenario's audit rows carry
FAILED_PATHS = {"failed_basic": "/api/me/", "failed_token": "/api/token/"}
FAILURE_STATUSES = {401, 403, 429}
EXPECTED_STATUS = {
    "valid_jwt": {200},
    "tampered_jwt": {401},
    "no_credentials": {401},
    "failed_basic": {401},
    "failed_token": {401},
}
WRONG_PASSWORD = "wrong-password"


REPORT: list[TextIO] = []


def say(*parts: Any) -> None:
    print(*parts, flush=True)
    for out in REPORT:
        print(*parts, file=out, flush=True)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def tamper(token: str) -> str:
    """The same token with one signature character changed (not the last one, whose low bits
    may be padding): the signature no longer verifies."""
    head, payload, signature = token.split(".")
    k = len(signature) // 2
    swapped = "A" if signature[k] != "A" else "B"
    return ".".join([head, payload, signature[:k] + swapped + signature[k + 1 :]])


def pool_names(size: int) -> list[str]:
    return [f"user{i:05d}" for i in range(size)]


def scenario_requests(name: str, token: str, usernames: list[str]) -> list[list[Any]]:
    if name == "valid_jwt":
        return [["GET", "/api/me/", {"Authorization": f"Bearer {token}"}, None]]
    if name == "tampered_jwt":
        return [["GET", "/api/me/", {"Authorization": f"Bearer {tamper(token)}"}, None]]
    if name == "no_credentials":
        return [["GET", "/api/me/", {}, None]]
    if name == "failed_basic":
        return [
            ["GET", "/api/me/", {"Authorization": basic(u, WRONG_PASSWORD)}, None]
            for u in usernames
        ]
    if name == "failed_token":
        return [
            [
                "POST",
                "/api/token/",
                {"Content-Type": "application/json"},
                json.dumps({"username": u, "password": WRONG_PASSWORD}),
            ]
            for u in usernames
        ]
    raise ValueError(name)


# --- stacks -------------------------------------------------------------------------------


class Stack:
    """One stack on one database: its settings, database, gunicorn and log file."""

    def __init__(
        self,
        name: str,
        db: str,
        port: int,
        args: argparse.Namespace,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.db = db
        self.port = port
        self.args = args
        self.extra_env = extra_env or {}
        self.server: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.failure_limit: int | None = None
        self.log = DATA / f"{db}-{name}-{port}.log"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=f"benchmarks.settings.{self.name}",
            AUTH401_BENCH_DB=self.db,
            AUTH401_BENCH_POSTGRES=self.args.postgres,
            AUTH401_BENCH_REDIS=self.args.redis,
            PYTHONPATH=str(ROOT),
        )
        for name in ("DATABASE_URL", "REDIS_URL"):
            env.pop(name, None)
        env.update(self.extra_env)
        return env

    def call(self, *command: str) -> Any:
        done = subprocess.run(
            [PYTHON, "-m", "benchmarks.stack", *command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"{self.name}: benchmarks.stack {command[0]} failed:\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def create_database(self) -> None:
        if self.db == "sqlite":
            path = DATA / f"{self.name}.sqlite3"
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        import psycopg

        with psycopg.connect(f"{self.args.postgres.rstrip('/')}/postgres", autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS auth401_bench_{self.name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE auth401_bench_{self.name}")

    def prepare(self, pool: int | None = None) -> None:
        self.create_database()
        pool = self.args.pool if pool is None else pool
        prepared = self.call("prepare", "--pool", str(pool))
        self.token = prepared["token"]
        self.failure_limit = prepared.get("failure_limit")

    def start(self, workers: int = 1) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen(
                [
                    PYTHON, "-m", "gunicorn",
                    "--workers", str(workers),
                    "--worker-class", "sync",
                    "--bind", f"127.0.0.1:{self.port}",
                    "--log-level", "warning",
                    "--timeout", "120",
                    "benchmarks.wsgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/me/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # answered (401): up
            except OSError:
                if self.server.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"{self.name}: gunicorn did not start; see {self.log}")

    def worker_pids(self) -> list[int]:
        if self.server is None:
            return []
        path = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []

    def worker_rss_mb(self) -> float | None:
        """Resident memory of the (first) worker, from /proc."""
        for pid in self.worker_pids()[:1]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
            except OSError:
                return None
        return None

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.server = None


class Client:
    """A load-generator process (benchmarks/client.py) spoken to over a pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "benchmarks.client"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **spec: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator died")
        return json.loads(line)

    def burst(self, **spec: Any) -> dict[str, Any]:
        self.send(**spec)
        return self.receive()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def fmt_ratio(value: float | None) -> str:
    return "   -  " if value is None else f"{value:5.2f}x"


# --- the scenarios ------------------------------------------------------------------------


def compare(
    stacks: list[Stack], client: Client, scenario: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Alternating rounds of one scenario over all stacks; paired ratios to bare."""
    names = pool_names(args.pool)
    rounds = max(1, math.ceil(args.seconds / args.round_seconds))
    results: dict[str, dict[str, Any]] = {
        s.name: {"rps": [], "lat": [], "statuses": {}, "answered": Counter()} for s in stacks
    }
    requests = {s.name: scenario_requests(scenario, s.token, names) for s in stacks}
    for stack in stacks:  # warm-up: imports, connections, caches
        out = client.burst(
            port=stack.port, seconds=args.warmup, connections=args.connections,
            requests=requests[stack.name],
        )  # fmt: skip
        results[stack.name]["answered"].update({int(k): v for k, v in out["statuses"].items()})
    for r in range(rounds):
        order = stacks[r % len(stacks) :] + stacks[: r % len(stacks)]
        for stack in order:
            out = client.burst(
                port=stack.port, seconds=args.round_seconds, connections=args.connections,
                requests=requests[stack.name],
            )  # fmt: skip
            entry = results[stack.name]
            entry["rps"].append(out["count"] / out["elapsed"])
            entry["lat"].extend(out["latencies_ms"])
            for status, count in out["statuses"].items():
                entry["statuses"][status] = entry["statuses"].get(status, 0) + count
                entry["answered"][int(status)] += count
    summary: dict[str, Any] = {}
    bare = results["bare"]["rps"]
    for stack in stacks:
        entry = results[stack.name]
        ratios = [a / b for a, b in zip(entry["rps"], bare, strict=True) if b]
        summary[stack.name] = {
            "rps": statistics.median(entry["rps"]),
            "p50": percentile(entry["lat"], 50),
            "p99": percentile(entry["lat"], 99),
            "ratio": statistics.median(ratios) if stack.name != "bare" else 1.0,
            "ratio_low": min(ratios),
            "ratio_high": max(ratios),
            "rounds": rounds,
            "statuses": entry["statuses"],
            # every answer this stack gave in the scenario, warm-up included (for rows/failure)
            "failures": sum(n for st, n in entry["answered"].items() if st in FAILURE_STATUSES),
        }
    return summary


def audit_check(stack: Stack, mark: int, failures: int, path: str, code: str) -> dict[str, Any]:
    """After a failed-login scenario: drain the recorded events (when this auth401 has
    ``auth401_drain``), then count the ``AuthEvent`` rows written since ``mark``."""
    drained = stack.call("drain")
    found = stack.call("events", "--after-id", str(mark), "--path", path)
    rows = found["by_code"].get(code, 0)
    return {
        "drained": drained["drain"],
        "failures": failures,
        "rows": rows,
        "per_failure": rows / failures if failures else float("nan"),
        "by_code": found["by_code"],
        "distinct_request_ids": found["distinct_request_ids"],
        "rows_total": found["rows"],
    }


def print_audit(stack: Stack, audit: dict[str, Any], code: str) -> None:
    how = "after auth401_drain" if audit["drained"] else "no auth401_drain command in this version"
    duplicates = audit["rows_total"] - audit["distinct_request_ids"]
    say(
        f"  {stack.name}: AuthEvent rows per failure ({how}): {audit['per_failure']:.3f} "
        f"({audit['rows']} {code} rows / {audit['failures']} failed answers; "
        f"{duplicates} duplicate request ids; rows on this path by code: {audit['by_code']})"
        f"  expected exactly 1: {'yes' if audit['rows'] == audit['failures'] else 'NO'}"
    )


def print_comparison(
    db: str, scenario: str, summary: dict[str, Any], queries: dict[str, Any], args: Any
) -> None:
    rounds = next(iter(summary.values()))["rounds"]
    say(
        f"\n{SCENARIO_TITLES[scenario]}  [{db}; {rounds} rounds x {args.round_seconds:g} s "
        f"per stack, {args.connections} connections]"
    )
    say(
        f"  {'stack':8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} "
        f"{'(min-max)':>11} {'SQL/req':>7} {'Redis/req':>9}  statuses"
    )
    for name, row in summary.items():
        q = queries.get(name, {}).get(scenario, {})
        spread = "" if name == "bare" else f"{row['ratio_low']:.2f}-{row['ratio_high']:.2f}"
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(row["statuses"].items()))
        unexpected = set(map(int, row["statuses"])) - EXPECTED_STATUS[scenario]
        say(
            f"  {name:8} {row['rps']:7.0f} {row['p50']:7.2f} {row['p99']:7.2f} "
            f"{fmt_ratio(row['ratio'] if name != 'bare' else None)} {spread:>11} "
            f"{q.get('sql', float('nan')):7.1f} {q.get('redis', float('nan')):9.1f}  {statuses}"
            + ("  UNEXPECTED STATUS" if unexpected else "")
        )


def flood(stack: Stack, client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """Failed logins on POST /api/token/ against rotating unknown usernames, for minutes."""
    seconds = int(args.flood_minutes * 60)
    bucket = 60 if seconds >= 120 else max(1, seconds // 4)
    usernames = [f"flood-{i:05d}" for i in range(args.flood_usernames)]
    stack.call("reset")
    mark = stack.call("watermark")["max_id"]
    before = stack.call("sizes")
    before["worker_rss_mb"] = stack.worker_rss_mb()
    say(
        f"\nflood: {stack.name} [{stack.db}], {args.flood_minutes:g} min of failed logins on "
        f"POST /api/token/ over {len(usernames)} rotating usernames, "
        f"{args.connections} connections"
    )
    out = client.burst(
        port=stack.port, seconds=seconds, connections=args.connections,
        requests=scenario_requests("failed_token", stack.token, usernames),
    )  # fmt: skip
    rss_end = stack.worker_rss_mb()
    after = stack.call("sizes")  # before the drain: what the stream holds at the end
    after["worker_rss_mb"] = rss_end
    per_second = out["per_second"]
    buckets = [sum(per_second[i : i + bucket]) / bucket for i in range(0, len(per_second), bucket)]
    buckets = [b for b in buckets if b] or [0.0]
    unit = "minute" if bucket == 60 else f"{bucket} s"
    say(f"  throughput per {unit} (req/s): " + " ".join(f"{b:.0f}" for b in buckets))
    flat = buckets[-1] / buckets[0] if buckets[0] else float("nan")
    say(
        f"  last / first {unit}: {flat:.2f}  (target >= {FLOOD_TARGET})  "
        f"statuses: {out['statuses']}"
    )
    say(f"  worker RSS: {_mb(before['worker_rss_mb'])} at start, {_mb(rss_end)} at end")
    say(f"  Redis streams at start: {before.get('redis_streams', {})}")
    say(f"  Redis streams at end:   {after.get('redis_streams', {})}  (before draining)")
    say(f"  sizes at start: {json.dumps(before)}")
    say(f"  sizes at end:   {json.dumps(after)}")
    result = {"buckets": buckets, "last_over_first": flat, "before": before, "after": after}
    if stack.name != "bare" and "axes" not in stack.name:
        failures = sum(n for st, n in out["statuses"].items() if int(st) in FAILURE_STATUSES)
        result["audit"] = audit_check(stack, mark, failures, "/api/token/", "credentials_invalid")
        print_audit(stack, result["audit"], "credentials_invalid")
        drained = stack.call("sizes")
        say(f"  sizes after draining: {json.dumps(drained)}")
        result["drained"] = drained
    return result


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} MB"


def under_attack(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """A legitimate user's p50 on /api/me/ idle and while another process floods failed logins
    against other accounts; idle and attacked bursts alternate, ratios are paired."""
    legit, attacker = Client(), Client()
    try:
        mine = scenario_requests("valid_jwt", stack.token, [])
        theirs = scenario_requests("failed_token", stack.token, pool_names(args.pool))
        rounds = max(1, math.ceil(args.attack_seconds / (2 * args.round_seconds)))
        legit.burst(port=stack.port, seconds=args.warmup, connections=1, requests=mine)
        idle: list[float] = []
        attacked: list[float] = []
        ratios: list[float] = []
        flood_rps: list[float] = []
        for _ in range(rounds):
            a = legit.burst(port=stack.port, seconds=args.round_seconds, connections=1,
                            requests=mine)  # fmt: skip
            attacker.send(port=stack.port, seconds=args.round_seconds + 0.6,
                          connections=args.attack_connections, requests=theirs,
                          rate=args.attack_rate)  # fmt: skip
            time.sleep(0.3)
            b = legit.burst(port=stack.port, seconds=args.round_seconds, connections=1,
                            requests=mine)  # fmt: skip
            f = attacker.receive()
            flood_rps.append(f["count"] / f["elapsed"])
            idle.extend(a["latencies_ms"])
            attacked.extend(b["latencies_ms"])
            ratios.append(percentile(b["latencies_ms"], 50) / percentile(a["latencies_ms"], 50))
    finally:
        legit.close()
        attacker.close()
    result = {
        "idle_p50": percentile(idle, 50),
        "attacked_p50": percentile(attacked, 50),
        "ratio": statistics.median(ratios),
        "flood_rps": statistics.median(flood_rps),
        "rounds": rounds,
    }
    say(
        f"  {stack.name:8} idle p50 {result['idle_p50']:6.2f} ms   under flood p50 "
        f"{result['attacked_p50']:6.2f} ms   ratio {result['ratio']:.2f}x "
        f"(target <= {ATTACK_TARGET})   "
        f"flood {result['flood_rps']:.0f} failed logins/s"
    )
    return result


def profile(stack: Stack, client: Client, scenario: str, args: argparse.Namespace) -> None:
    """py-spy on the worker while it serves ``scenario``; writes a collapsed-stack file."""
    spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    pids = stack.worker_pids()
    if not Path(spy).exists() or not pids:
        say(f"  (no py-spy or no worker pid: skipping the {scenario} profile)")
        return
    out = DATA / f"profile-{stack.db}-{stack.name}-{scenario}.txt"
    seconds = max(5, int(args.profile_seconds))
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(pids[0]), "--format", "raw", "--rate", "500",
         "--duration", str(seconds), "--output", str(out), "--nonblocking", "--idle"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    client.burst(
        port=stack.port, seconds=seconds, connections=args.connections,
        requests=scenario_requests(scenario, stack.token, pool_names(args.pool)),
    )  # fmt: skip
    recorder.wait(timeout=60)
    from benchmarks.pyspy_summary import summarise

    say(f"\nprofile of {stack.name} / {scenario} ({out.relative_to(ROOT)}):")
    say(summarise(out, top=args.profile_top))


# --- timing parity ------------------------------------------------------------------------


def bootstrap_median_difference(
    a: list[float], b: list[float], rng: random.Random, reps: int = 2000
) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of median(a) - median(b)."""
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(reps)
    )
    return diffs[int(0.025 * reps)], diffs[int(0.975 * reps) - 1]


def prob_slower(a: list[float], b: list[float]) -> float:
    """P(a sample of ``a`` is slower than one of ``b``), ties counted half (the Mann-Whitney
    AUC): 0.50 means one sample says nothing about which side it came from."""
    merged = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    rank_sum_a = 0.0
    i = 0
    while i < len(merged):
        j = i
        while j < len(merged) and merged[j][0] == merged[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2  # 1-based ranks i+1..j share their mean
        rank_sum_a += mean_rank * sum(1 for k in range(i, j) if merged[k][1] == 0)
        i = j
    u = rank_sum_a - len(a) * (len(a) + 1) / 2
    return u / (len(a) * len(b))


def _login_request(kind: str, port: int, username: str, request_id: str | None = None) -> list[Any]:
    headers: dict[str, str] = {"X-Request-ID": request_id} if request_id else {}
    if kind == "basic":
        headers["Authorization"] = basic(username, WRONG_PASSWORD)
        return [port, "GET", "/api/me/", headers, None]
    headers["Content-Type"] = "application/json"
    body = json.dumps({"username": username, "password": WRONG_PASSWORD})
    return [port, "POST", "/api/token/", headers, body]


def parity(stack: Stack, client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """Locked real accounts against locked unknown names: the attempt that locks, and the
    refusals after; one connection, real and unknown alternating in a random order.

    Each timed request is followed by an untimed spacer (``GET /api/me/`` without
    credentials): work a worker does after answering delays the spacer, not the other side's
    timed request, and the spacers' own times are reported too (a tell that shows only in the
    *next* request is still a tell)."""
    limit = stack.failure_limit or 5
    n = args.parity_n
    rng = random.Random(args.seed)
    report: dict[str, Any] = {}
    spacer = [stack.port, "GET", "/api/me/", {}, None]
    say(
        f"\ntiming parity [{stack.db}]: {stack.name} stack (FAILURE_LIMIT {limit}, address limit "
        f"out of reach), n = {n} per side, 1 connection, real and unknown alternating in random "
        f"order; medians in ms, difference real - unknown with a 95% bootstrap interval, "
        f"P(real slower) 0.50 = no tell; 'next request' = the request right after, on the "
        f"same worker"
    )
    for k, kind in enumerate(("basic", "token")):
        reals = pool_names(2 * n)[k * n : (k + 1) * n]
        ghosts = [f"ghost-{kind}-{i:05d}" for i in range(n)]
        requests: list[list[Any]] = []
        locking: dict[str, list[int]] = {"real": [], "unknown": []}
        for real, ghost in zip(reals, ghosts, strict=True):
            pair = [("real", real), ("unknown", ghost)]
            rng.shuffle(pair)
            for _side, name in pair:  # the failures before the limit
                requests += [_login_request(kind, stack.port, name)] * (limit - 1)
            rng.shuffle(pair)
            for side, name in pair:  # the attempt that reaches the limit, then a spacer
                locking[side].append(len(requests))
                requests += [_login_request(kind, stack.port, name), spacer]
        refusals: dict[str, list[int]] = {"real": [], "unknown": []}
        refusal_requests: list[list[Any]] = []
        for real, ghost in zip(reals, ghosts, strict=True):
            pair = [("real", real), ("unknown", ghost)]
            rng.shuffle(pair)
            for side, name in pair:
                refusals[side].append(len(refusal_requests))
                refusal_requests += [_login_request(kind, stack.port, name), spacer]
        first = client.burst(mode="list", connections=1, requests=requests, timeout=3600)
        second = client.burst(mode="list", connections=1, requests=refusal_requests, timeout=3600)
        title = "Basic on GET /api/me/" if kind == "basic" else "POST /api/token/"
        for phase, out, index in (
            ("locking attempt", first, locking),
            ("refusal after the lock", second, refusals),
        ):
            for label, shift in ((phase, 0), ("  next request", 1)):
                at = {side: [i + shift for i in idx] for side, idx in index.items()}
                entry = _parity_entry(out, at, rng)
                report[f"{kind} {phase}" + (" / next request" if shift else "")] = entry
                low, high = entry["ci95_ms"]
                say(
                    f"  {title:22} {label:23} real {entry['median_real_ms']:6.3f}  unknown "
                    f"{entry['median_unknown_ms']:6.3f}  difference "
                    f"{entry['difference_ms']:+.3f} [{low:+.3f}, {high:+.3f}]  "
                    f"P(real slower) {entry['p_real_slower']:.2f}"
                )
                codes = entry["answers"]
                same = "same answers" if codes["real"] == codes["unknown"] else "ANSWERS DIFFER"
                if not shift:
                    say(f"    answers: real {codes['real']}  unknown {codes['unknown']}  ({same})")
    return report


def _parity_entry(
    out: dict[str, Any], at: dict[str, list[int]], rng: random.Random
) -> dict[str, Any]:
    lat = {side: [out["latencies_ms"][i] for i in idx] for side, idx in at.items()}
    low, high = bootstrap_median_difference(lat["real"], lat["unknown"], rng)
    return {
        "median_real_ms": statistics.median(lat["real"]),
        "median_unknown_ms": statistics.median(lat["unknown"]),
        "difference_ms": statistics.median(lat["real"]) - statistics.median(lat["unknown"]),
        "ci95_ms": [low, high],
        "p_real_slower": prob_slower(lat["real"], lat["unknown"]),
        "answers": {
            side: dict(Counter(f"{out['statuses'][i]} {out['codes'][i]}" for i in idx))
            for side, idx in at.items()
        },
    }


# --- two servers --------------------------------------------------------------------------


def two_servers(args: argparse.Namespace) -> dict[str, Any]:
    """Two gunicorn masters on one PostgreSQL database and one Redis; wrong passwords for one
    account from many threads, split across them.  Prints the password checks (counted by the
    hasher in every worker), the answers, and the AuthEvent rows per failure after
    ``auth401_drain``."""
    checks = DATA / "two-servers-checks.txt"
    checks.unlink(missing_ok=True)
    env = {"AUTH401_BENCH_CHECKS": str(checks)}
    servers = [
        Stack("twoservers", "postgres", args.base_port + 4 + k, args, extra_env=env)
        for k in range(2)
    ]
    servers[0].prepare(pool=4)
    limit = servers[0].failure_limit or 5
    target = pool_names(1)[0]
    run_id = f"{int(time.time())}"
    n = args.two_servers_requests
    say(
        f"\ntwo servers [postgres + redis]: 2 gunicorn masters x {args.two_servers_workers} sync "
        f"workers, one database and one Redis; {n} wrong passwords for one account "
        f"(FAILURE_LIMIT {limit}) from {args.two_servers_connections} threads, alternating "
        f"servers, half Basic on GET /api/me/, half POST /api/token/, each with its own "
        f"X-Request-ID"
    )
    mark = servers[0].call("watermark")["max_id"]
    requests = [
        _login_request(
            "basic" if i % 4 < 2 else "token",
            servers[i % 2].port,
            target,
            f"two-servers-{run_id}-{i:05d}",
        )
        for i in range(n)
    ]
    after = [
        _login_request("token", s.port, target, f"two-servers-{run_id}-after-{k}")
        for k, s in enumerate(servers)
    ]
    client = Client()
    try:
        with running(servers, workers=args.two_servers_workers):
            out = client.burst(
                mode="list", connections=args.two_servers_connections, requests=requests,
                timeout=600,
            )  # fmt: skip
            follow = client.burst(mode="list", connections=1, requests=after, timeout=60)
    finally:
        client.close()
    # the servers are stopped (SIGTERM): whatever they batch is flushed
    password_checks = checks.stat().st_size if checks.exists() else 0
    answers = Counter(
        f"{st} {code}" for st, code in zip(out["statuses"], out["codes"], strict=True)
    )
    follow_answers = [
        f"{st} {code}" for st, code in zip(follow["statuses"], follow["codes"], strict=True)
    ]
    sent = [r[3]["X-Request-ID"] for r in requests + after]
    statuses = out["statuses"] + follow["statuses"]
    failed_ids = {rid for rid, st in zip(sent, statuses, strict=True) if st in FAILURE_STATUSES}
    drained = servers[0].call("drain")
    found = servers[0].call(
        "events", "--after-id", str(mark), "--username", target, "--request-ids"
    )
    answer_codes = {code for code in out["codes"] + follow["codes"] if code}
    # rows of the failures themselves; other rows (the lock's own event) are listed apart
    ids = [rid for rid, code in found["request_ids"] if code in answer_codes]
    others = Counter(code for _rid, code in found["request_ids"] if code not in answer_codes)
    missing = failed_ids - set(ids)
    extra = set(ids) - failed_ids
    duplicates = len(ids) - len(set(ids))
    checked = answers.get("401 credentials_invalid", 0)
    result = {
        "failure_limit": limit,
        "password_checks": password_checks,
        "credentials_invalid_answers": checked,
        "answers": dict(answers),
        "after_flood": follow_answers,
        "failures": len(failed_ids),
        "rows": len(ids),
        "rows_by_code": found["by_code"],
        "other_events": dict(others),
        "missing": len(missing),
        "extra": len(extra),
        "duplicates": duplicates,
        "drained": drained["drain"],
    }
    say(f"  answers: {dict(sorted(answers.items()))}")
    say(f"  one more request to each server after the flood: {follow_answers}")
    locked = all(a.split(" ", 1)[1] == "account_locked" for a in follow_answers)
    result["locked_after"] = locked
    say(
        f"  password checks (hasher, all workers of both servers): {password_checks} "
        f"(FAILURE_LIMIT {limit}): {'met' if password_checks == limit else 'NOT met'}; "
        f"credentials_invalid answers: {checked}; both servers answer the lock after: "
        f"{'yes' if locked else 'NO'}"
    )
    how = "after auth401_drain" if drained["drain"] else "no auth401_drain command in this version"
    per = len(ids) / len(failed_ids) if failed_ids else float("nan")
    ok = not missing and not extra and not duplicates
    say(
        f"  AuthEvent rows per failure ({how}): {per:.3f} ({len(ids)} rows / "
        f"{len(failed_ids)} failed answers; {len(missing)} missing, {len(extra)} unexpected, "
        f"{duplicates} duplicated request ids): {'exactly 1: met' if ok else 'NOT exactly 1'}; "
        f"other events for this account: {dict(others)}"
    )
    return result


# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def running(stacks: list[Stack], workers: int = 1) -> Iterator[None]:
    try:
        for stack in stacks:
            stack.start(workers=workers)
        yield
    finally:
        for stack in stacks:
            stack.stop()


def run_database(db: str, args: argparse.Namespace) -> dict[str, Any]:
    names = ["bare", "auth401"]
    if importlib.util.find_spec("axes") is not None and not args.no_axes:
        names.append("axes")
    stacks = [Stack(name, db, args.base_port + i, args) for i, name in enumerate(names)]
    label = "SQLite (local-memory cache)" if db == "sqlite" else "PostgreSQL + Redis"
    say(f"\n=== {label}: stacks {', '.join(names)} ===")
    report: dict[str, Any] = {"queries": {}, "scenarios": {}, "audit": {}}
    comparing = bool(args.scenarios) or bool(args.profile) or args.flood_minutes > 0
    if comparing or args.attack_seconds > 0:
        for stack in stacks:
            stack.prepare()
    if args.scenarios:
        for stack in stacks:
            report["queries"][stack.name] = stack.call(
                "queries", "--token", stack.token, "--tampered", tamper(stack.token),
                "--pool", str(args.pool),
            )  # fmt: skip
    if comparing:
        with running(stacks):
            client = Client()
            try:
                for scenario in args.scenarios:
                    auditing = [s for s in stacks if s.name == "auth401"]
                    if scenario not in FAILED_PATHS:
                        auditing = []
                    marks = {s.name: s.call("watermark")["max_id"] for s in auditing}
                    summary = compare(stacks, client, scenario, args)
                    report["scenarios"][scenario] = summary
                    print_comparison(db, scenario, summary, report["queries"], args)
                    for stack in auditing:
                        audit = audit_check(
                            stack, marks[stack.name], summary[stack.name]["failures"],
                            FAILED_PATHS[scenario], "credentials_invalid",
                        )  # fmt: skip
                        report["audit"][scenario] = audit
                        print_audit(stack, audit, "credentials_invalid")
                for scenario in args.profile:
                    for stack in stacks:
                        if stack.name in args.profile_stacks:
                            profile(stack, client, scenario, args)
                if args.flood_minutes > 0:
                    report["flood"] = {
                        s.name: flood(s, client, args)
                        for s in stacks
                        if s.name in args.flood_stacks
                    }
            finally:
                client.close()
    if args.attack_seconds > 0:
        say(
            f"\nlegitimate user during a failed-login flood [{db}]: valid JWT on /api/me/, "
            f"1 connection; the flood: POST /api/token/ wrong passwords for other accounts from "
            f"another process, {args.attack_connections} connection(s); each stack alone, "
            f"gunicorn {args.attack_workers} sync worker(s)"
        )
        report["attack"] = {}
        for stack in stacks:
            if stack.name in args.attack_stacks:
                try:
                    stack.start(workers=args.attack_workers)
                    report["attack"][stack.name] = under_attack(stack, args)
                finally:
                    stack.stop()
    if db == "postgres" and args.parity_n > 0:
        locking = Stack("locking", db, args.base_port + 3, args)
        locking.prepare(pool=2 * args.parity_n)
        with running([locking]):
            client = Client()
            try:
                report["parity"] = parity(locking, client, args)
            finally:
                client.close()
    if db == "postgres" and args.two_servers_requests > 0:
        report["two_servers"] = two_servers(args)
    if db == "postgres":
        verdicts(report, args)
        markdown_table(report)
    return report


def verdicts(report: dict[str, Any], args: argparse.Namespace) -> None:
    say("\ntargets (PostgreSQL + Redis, auth401 / bare, median of paired ratios):")
    queries = report["queries"]
    for name in ("auth401",):
        for scenario, target in TARGETS.items():
            row = report["scenarios"].get(scenario, {}).get(name)
            if row is None:
                continue
            extra = queries[name][scenario]["sql"] - queries["bare"][scenario]["sql"]
            ok = row["ratio"] >= target and (scenario != "valid_jwt" or extra <= 0)
            note = f", extra SQL queries {extra:+.0f}" if scenario == "valid_jwt" else ""
            audit = report["audit"].get(scenario)
            if audit is not None:
                note += f", AuthEvent rows per failure {audit['per_failure']:.3f}"
                ok = ok and audit["rows"] == audit["failures"]
            say(
                f"  {name:8} {SCENARIO_TITLES[scenario]:38} {row['ratio']:.2f}x >= "
                f"{target:.2f}{note}: {'met' if ok else 'NOT met'}"
            )
    for name, flood_report in report.get("flood", {}).items():
        ok = flood_report["last_over_first"] >= FLOOD_TARGET
        before = flood_report["before"].get("worker_rss_mb")
        after = flood_report["after"].get("worker_rss_mb")
        say(
            f"  flood ({name}): last / first {flood_report['last_over_first']:.2f} >= "
            f"{FLOOD_TARGET}: {'met' if ok else 'NOT met'}; worker RSS {_mb(before)} -> "
            f"{_mb(after)}; streams at end {flood_report['after'].get('redis_streams', {})}"
        )
    attack = report.get("attack", {})
    if "auth401" in attack:
        mine = attack["auth401"]["ratio"]
        bare = attack.get("bare", {}).get("ratio")
        ok = mine <= ATTACK_TARGET and (bare is None or mine <= bare)
        versus = "" if bare is None else f" and <= bare's {bare:.2f}x"
        say(
            f"  legitimate p50 under flood: {mine:.2f}x <= {ATTACK_TARGET}{versus}: "
            f"{'met' if ok else 'NOT met'}"
        )
    for key, entry in report.get("parity", {}).items():
        low, high = entry["ci95_ms"]
        ok = low <= 0 <= high
        say(
            f"  timing parity, {key}: real - unknown {entry['difference_ms']:+.3f} ms "
            f"[{low:+.3f}, {high:+.3f}], P(real slower) {entry['p_real_slower']:.2f}: "
            f"{'no measurable difference' if ok else 'MEASURABLE DIFFERENCE'}"
        )
    two = report.get("two_servers")
    if two is not None:
        ok = (
            two["password_checks"] == two["failure_limit"]
            and two["locked_after"]
            and not two["missing"]
            and not two["extra"]
            and not two["duplicates"]
        )
        say(
            f"  two servers: {two['password_checks']} password checks (FAILURE_LIMIT "
            f"{two['failure_limit']}), {two['rows']} AuthEvent rows for {two['failures']} "
            f"failures: {'met' if ok else 'NOT met'}"
        )


def markdown_table(report: dict[str, Any]) -> None:
    """The results as the Markdown table of docs/performance.md."""
    say("\nresults table (Markdown):\n")
    say("| scenario | target | auth401 | django-axes | SQL / Redis per request (bare) |")
    say("|---|---|---|---|---|")
    queries = report["queries"]
    for scenario, target in TARGETS.items():
        rows = report["scenarios"].get(scenario)
        if not rows or "auth401" not in rows:
            continue
        q = queries.get("auth401", {}).get(scenario, {})
        qb = queries.get("bare", {}).get(scenario, {})
        axes = rows.get("axes")
        extra = ""
        audit = report["audit"].get(scenario)
        if audit is not None:
            extra = f", {audit['per_failure']:.2f} AuthEvent rows per failure"
        say(
            f"| {SCENARIO_TITLES[scenario]} | >= {target:.2f}x | {rows['auth401']['ratio']:.2f}x "
            f"({rows['auth401']['ratio_low']:.2f}-{rows['auth401']['ratio_high']:.2f}){extra} | "
            f"{fmt_ratio(axes['ratio']).strip() if axes else '-'} | "
            f"{q.get('sql', 0):.0f} / {q.get('redis', 0):.0f} "
            f"({qb.get('sql', 0):.0f} / {qb.get('redis', 0):.0f}) |"
        )
    for name, flood_report in report.get("flood", {}).items():
        rss = (
            flood_report["before"].get("worker_rss_mb"),
            flood_report["after"].get("worker_rss_mb"),
        )
        audit = flood_report.get("audit")
        rows = "" if audit is None else f", {audit['per_failure']:.2f} rows per failure"
        say(
            f"| flood, last / first minute ({name}) | >= {FLOOD_TARGET} | "
            f"{flood_report['last_over_first']:.2f} (worker RSS {_mb(rss[0])} -> {_mb(rss[1])}"
            f"{rows}) | | |"
        )
    attack = report.get("attack", {})
    if "auth401" in attack:
        bare = attack.get("bare", {}).get("ratio")
        axes = attack.get("axes", {}).get("ratio")
        say(
            f"| legitimate user's p50 under a flood / idle | <= {ATTACK_TARGET}x and <= bare's | "
            f"{attack['auth401']['ratio']:.2f}x (bare {fmt_ratio(bare).strip()}) | "
            f"{fmt_ratio(axes).strip()} | |"
        )
    for key, entry in report.get("parity", {}).items():
        low, high = entry["ci95_ms"]
        say(
            f"| timing, locked real - unknown name, {key} | interval includes 0 | "
            f"{entry['difference_ms']:+.3f} ms [{low:+.3f}, {high:+.3f}] | | |"
        )
    two = report.get("two_servers")
    if two is not None:
        say(
            f"| two servers: password checks before the lock | = {two['failure_limit']} | "
            f"{two['password_checks']} | | |"
        )
        per = two["rows"] / two["failures"] if two["failures"] else float("nan")
        say(f"| two servers: AuthEvent rows per failure | 1 | {per:.2f} | | |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres", "both"],
        default="postgres",
        help="postgres (default): PostgreSQL + Redis, where the targets apply",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 s rounds, 4 s per stack, 30 s flood"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=60,
        help="load per stack per scenario, in alternating rounds (default 60)",
    )
    parser.add_argument("--round-seconds", type=float, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--connections",
        type=int,
        default=2,
        help="concurrent client connections (default 2: the worker never idles)",
    )
    parser.add_argument(
        "--scenarios",
        nargs="*",
        default=SCENARIOS,
        choices=SCENARIOS,
        help="the paired-ratio scenarios (none: skip them)",
    )
    parser.add_argument(
        "--pool", type=int, default=200, help="accounts the failed logins rotate over"
    )
    parser.add_argument(
        "--flood-minutes", type=float, default=10, help="failed-login flood (0: skip; default 10)"
    )
    parser.add_argument("--flood-usernames", type=int, default=10_000)
    parser.add_argument("--flood-stacks", nargs="*", default=["auth401"])
    parser.add_argument(
        "--attack-seconds",
        type=float,
        default=60,
        help="legitimate-user scenario: idle + attacked seconds per stack (0: skip)",
    )
    parser.add_argument("--attack-stacks", nargs="*", default=["bare", "auth401", "axes"])
    parser.add_argument("--attack-connections", type=int, default=1)
    parser.add_argument(
        "--attack-workers",
        type=int,
        default=2,
        help="gunicorn sync workers in the legitimate-user scenario (default 2: "
        "with one, any flood queues the user behind it, on any stack)",
    )
    parser.add_argument(
        "--attack-rate",
        type=float,
        default=0,
        help="flood requests/s per connection (0: as fast as answered)",
    )
    parser.add_argument(
        "--parity-n",
        type=int,
        default=1000,
        help="timing parity: locked real accounts and locked unknown names, each (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=401, help="order of the parity requests")
    parser.add_argument(
        "--two-servers-requests",
        type=int,
        default=400,
        help="two-server scenario: wrong passwords for one account (0: skip)",
    )
    parser.add_argument("--two-servers-connections", type=int, default=16)
    parser.add_argument("--two-servers-workers", type=int, default=2)
    parser.add_argument(
        "--profile",
        nargs="*",
        default=[],
        choices=SCENARIOS,
        help="py-spy the auth401 worker under these scenarios",
    )
    parser.add_argument("--profile-seconds", type=float, default=20)
    parser.add_argument("--profile-stacks", nargs="*", default=["auth401"])
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--no-axes", action="store_true")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--base-port", type=int, default=18401, help="first of the 6 ports the servers use"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--report", type=Path, help="also write this plain-text report here (benchmarks/results/)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.round_seconds, args.warmup = 4, 1, 0.5
        args.flood_minutes = min(args.flood_minutes, 0.5)
        args.attack_seconds = min(args.attack_seconds, 6)
        args.profile_seconds = min(args.profile_seconds, 5)
        args.parity_n = min(args.parity_n, 100)
        args.two_servers_requests = min(args.two_servers_requests, 200)
    return args


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("django", "djangorestframework", "djangorestframework-simplejwt",
                 "django-auth401", "django-axes", "gunicorn", "psycopg", "redis"):  # fmt: skip
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def _server_versions(args: argparse.Namespace) -> str:
    parts = []
    try:
        import psycopg

        with psycopg.connect(f"{args.postgres.rstrip('/')}/postgres") as conn:
            parts.append("PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0])
    except Exception:  # a report line, not a requirement
        pass
    try:
        import redis

        info = redis.Redis.from_url(args.redis).info("server")
        parts.append(f"Redis {info['redis_version']}")
    except Exception:
        pass
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # A TERM (a CI timeout, kill PID) unwinds like Ctrl-C: the gunicorns are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    DATA.mkdir(parents=True, exist_ok=True)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        REPORT.append(open(args.report, "w"))  # noqa: SIM115 (closed at exit)
    say(
        f"auth401 benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}; gunicorn 1 sync worker per stack; "
        f"MD5PasswordHasher; command: python -m benchmarks.run {' '.join(sys.argv[1:])}"
    )
    say(f"versions: {_versions()}; {_server_versions(args)}")
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    try:
        reports = {db: run_database(db, args) for db in dbs}
    finally:
        for out in REPORT:
            out.close()
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
