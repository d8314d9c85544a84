"""Per-request cost of one stack, in process: the WSGI handler called directly (no gunicorn,
no sockets), so small differences in auth401's own work can be seen and profiled.

    AUTH401_BENCH_DB=postgres .venv/bin/python -m benchmarks.inproc --stacks bare auth401
    AUTH401_BENCH_DB=postgres .venv/bin/python -m benchmarks.inproc --stacks auth401 \\
        --scenario tampered_jwt --profile

Each stack runs in its own subprocess (its own settings), in alternating rounds; prints the
median microseconds per request of each scenario and the difference to the first stack.
Uses the databases ``python -m benchmarks.run`` prepared (or ``benchmarks.stack prepare``).
The throughput targets live in ``benchmarks.run``; this is the magnifying glass.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

SCENARIOS = ("valid_jwt", "tampered_jwt", "no_credentials", "failed_basic", "failed_token")


def _environ(scenario: str, token: str, index: int) -> dict[str, Any]:
    from .stack import WRONG_PASSWORD

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/me/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_USER_AGENT": "inproc",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    user = f"user{index % 200:05d}"  # benchmarks.stack.pool_names
    if scenario == "valid_jwt":
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    elif scenario == "tampered_jwt":
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        environ["HTTP_AUTHORIZATION"] = f"Bearer {flipped}"
    elif scenario == "failed_basic":
        pair = base64.b64encode(f"{user}:{WRONG_PASSWORD}".encode()).decode()
        environ["HTTP_AUTHORIZATION"] = f"Basic {pair}"
    elif scenario == "failed_token":
        body = json.dumps({"username": user, "password": WRONG_PASSWORD}).encode()
        environ.update(
            REQUEST_METHOD="POST",
            PATH_INFO="/api/token/",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH=str(len(body)),
        )
        environ["wsgi.input"] = io.BytesIO(body)
    return environ


def child(scenarios: list[str], count: int, profile: bool) -> None:
    """Runs inside one stack: read a line per round, answer with microseconds per request."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from rest_framework_simplejwt.tokens import AccessToken

    handler = WSGIHandler()
    token = str(AccessToken.for_user(get_user_model()._default_manager.get(username="alice")))

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    clock = (
        time.process_time if os.environ.get("AUTH401_INPROC_CLOCK") == "cpu" else time.perf_counter
    )

    def run(scenario: str, n: int) -> float:
        began = clock()
        for i in range(n):
            body = handler(_environ(scenario, token, i), start_response)
            for _ in body:
                pass
            body.close()
        return (clock() - began) / n * 1e6

    for scenario in scenarios:
        run(scenario, 50)  # warm-up
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        run(scenarios[0], count)
        profiler.disable()
        if os.environ.get("AUTH401_INPROC_STATS"):
            profiler.dump_stats(os.environ["AUTH401_INPROC_STATS"])
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(60)
        return
    for line in sys.stdin:
        scenario = line.strip()
        print(json.dumps(run(scenario, count)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", nargs="+", default=["bare", "auth401"])
    parser.add_argument("--scenario", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--count", type=int, default=200, help="requests per round")
    parser.add_argument("--profile", action="store_true", help="cProfile the first stack")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time this process's CPU (time.process_time) instead of the wall clock: steadier "
        "on a busy machine; leaves out the time spent waiting for the database and Redis",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.scenario, args.count, args.profile)
        return
    env_base = {**os.environ}
    if args.cpu:
        env_base["AUTH401_INPROC_CLOCK"] = "cpu"
    env_base.setdefault("AUTH401_BENCH_DB", "postgres")
    command = [sys.executable, "-m", "benchmarks.inproc", "--child", "--count", str(args.count)]
    command += ["--scenario", *args.scenario]
    if args.profile:
        env = {**env_base, "DJANGO_SETTINGS_MODULE": f"benchmarks.settings.{args.stacks[0]}"}
        subprocess.run([*command, "--profile"], env=env, check=True, stderr=subprocess.DEVNULL)
        return
    children = {
        name: subprocess.Popen(
            command,
            env={**env_base, "DJANGO_SETTINGS_MODULE": f"benchmarks.settings.{name}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name in args.stacks
    }
    samples = {(s, n): [] for s in args.scenario for n in args.stacks}
    for round_ in range(args.rounds):
        order = args.stacks[round_ % len(args.stacks) :] + args.stacks[: round_ % len(args.stacks)]
        for scenario in args.scenario:
            for name in order:
                proc = children[name]
                proc.stdin.write(scenario + "\n")
                proc.stdin.flush()
                samples[scenario, name].append(json.loads(proc.stdout.readline()))
    for proc in children.values():
        proc.stdin.close()
        proc.wait()
    first = args.stacks[0]
    for scenario in args.scenario:
        base = statistics.median(samples[scenario, first])
        cells = []
        for name in args.stacks:
            value = statistics.median(samples[scenario, name])
            extra = "" if name == first else f" ({value - base:+.0f})"
            cells.append(f"{name} {value:7.0f}{extra}")
        print(f"{scenario:15} " + "   ".join(cells) + "   us/request")


if __name__ == "__main__":
    main()
