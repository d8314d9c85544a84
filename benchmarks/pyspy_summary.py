"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile of a gunicorn worker.

    python -m benchmarks.pyspy_summary benchmarks/.data/profile-postgres-auth401-failed_token.txt

Prints, as a share of the samples spent serving requests (``WSGIHandler.__call__`` and the
response close that follows it; accept() and the idle loop are left out): the inclusive time of
every auth401 function and of the main framework steps, and the top functions by own time.
Recorded with ``--idle``, so waiting on PostgreSQL or Redis sockets counts as time spent.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
REQUEST_ROOTS = ("WSGIHandler.__call__", "handle_request (gunicorn/workers/sync.py")

#: framework steps worth naming even when they are not auth401's
LANDMARKS = (
    "JWTAuthentication.authenticate",
    "BasicAuthentication.authenticate",
    "TokenObtainSerializer.validate",
    "authenticate (django/contrib/auth/__init__.py",
    "check_password",
    "SQLCompiler.execute_sql",
    "CursorWrapper.execute",
    "Cursor.execute (psycopg/cursor.py",
    "Script.__call__",
    "Redis.execute_command",
    "json.dumps",
    "Logger.log",
    "Logger.warning",
    "Signal.send",
    "HttpResponseBase.close",
)


def _label(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({match['file']})"


def summarise(path: Path, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if not any(any(root in f for root in REQUEST_ROOTS) for f in frames):
            continue
        count = int(count_text)
        total += count
        seen: set[str] = set()
        for frame in frames:
            label = _label(frame)
            if label not in seen:
                seen.add(label)
                inclusive[label] += count
        own[_label(frames[-1])] += count
    if not total:
        return f"{path}: no request samples"
    lines = [f"{path.name}: {total} samples while serving requests"]
    lines.append("  inclusive, auth401 functions and framework landmarks:")
    picked = [
        (label, n)
        for label, n in inclusive.most_common()
        if "auth401/" in label or any(mark in label for mark in LANDMARKS)
    ]
    for label, n in picked[: top * 2]:
        lines.append(f"    {100 * n / total:5.1f}%  {label}")
    lines.append("  own time (top):")
    for label, n in own.most_common(top):
        lines.append(f"    {100 * n / total:5.1f}%  {label}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pyspy_summary")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(summarise(path, args.top))
        print()


if __name__ == "__main__":
    main()
