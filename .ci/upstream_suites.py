"""Run simplejwt's and DRF's own tests with auth401 swapped in; compare with the expected
differences (``.ci/upstream_expected_failures.txt``).

Fetches the sdists of the *installed* versions (``pip download --no-binary :all: --no-deps``,
cached), runs their authentication, serializer, view and integration tests with the
``upstream_shim`` plugin, reads each test's outcome from JUnit XML, and fails when a test
fails that the list does not name, or when a listed test passes (the list must stay exact).
The last line is ``N passed, N failed`` (failed: not on the list).

    python .ci/upstream_suites.py [--unswapped] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "upstream_expected_failures.txt"
CACHE = Path(os.environ.get("AUTH401_UPSTREAM_CACHE", Path.home() / ".cache" / "auth401-upstream"))

#: distribution -> (sdist directory prefix, test files run, extra pytest options)
SUITES: dict[str, tuple[list[str], list[str]]] = {
    "djangorestframework-simplejwt": (
        [
            "tests/test_authentication.py",
            "tests/test_integration.py",
            "tests/test_serializers.py",
            "tests/test_views.py",
        ],
        [],
    ),
    "djangorestframework": (
        [
            "tests/authentication/test_authentication.py",
            "tests/test_authtoken.py",
            "tests/test_permissions.py",
            "tests/test_views.py",
            "tests/test_exceptions.py",
            "tests/test_request.py",
            "tests/test_testing.py",
        ],
        ["--no-migrations"],
    ),
}


def expected_failures() -> dict[str, str]:
    """``suite::node id`` -> reason, from the list (``# reason`` after each entry)."""
    found: dict[str, str] = {}
    reason = ""
    for line in EXPECTED.read_text().splitlines():
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            reason = text.lstrip("# ").strip() or reason
            continue
        found[text] = reason
    return found


def sdist(distribution: str, version: str) -> Path:
    """The extracted sdist of ``distribution==version`` (downloaded once into the cache)."""
    global CACHE
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: download into a temporary directory
        CACHE = Path(tempfile.mkdtemp(prefix="auth401-upstream-cache-"))
    normalised = distribution.replace("-", "_")
    archives = [
        p
        for p in CACHE.glob("*.tar.gz")
        if p.name.lower().replace("-", "_").startswith(f"{normalised}_{version}".lower())
        or p.name.lower() == f"{distribution}-{version}.tar.gz".lower()
    ]
    if not archives:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--dest",
                str(CACHE),
                f"{distribution}=={version}",
            ],
            check=True,
        )
        return sdist(distribution, version)
    return archives[0]


def run_suite(name: str, workdir: Path, unswapped: bool) -> dict[str, str]:
    """Outcome per test id: passed, failed or skipped."""
    version = metadata.version(name)
    files, options = SUITES[name]
    target = workdir / name
    with tarfile.open(sdist(name, version)) as archive:
        root = archive.getnames()[0].split("/")[0]
        archive.extractall(workdir, filter="data")
    shutil.move(workdir / root, target)
    report = workdir / f"{name}.xml"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(HERE)])
    env["AUTH401_UNSWAPPED"] = "1" if unswapped else "0"
    print(f"== {name} {version}: {' '.join(files)}", flush=True)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "upstream_shim",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--rootdir",
            str(target),
            "-c",
            os.devnull,
            "-q",
            "--tb=line",
            "-o",
            "addopts=",
            "-W",
            "ignore",
            f"--junitxml={report}",
            *options,
            *files,
        ],
        cwd=target,
        env=env,
        check=False,
        # pytest's own summary counts the expected differences as failures: only this
        # script's verdict (below) is printed, pytest's output only when it wrote no report
        capture_output=True,
        text=True,
    )
    if not report.exists():
        print(run.stdout[-6000:], run.stderr[-3000:])
    outcomes: dict[str, str] = {}
    if not report.exists():
        print(f"{name}: pytest wrote no report (it could not start)")
        return {f"{name}::(suite did not start)": "failed"}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "")
        test_id = f"{name}::{module}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes[test_id] = "failed"
        elif case.find("skipped") is not None:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unswapped", action="store_true", help="upstream's own classes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="auth401-upstream-"))
    try:
        outcomes: dict[str, str] = {}
        for name in SUITES:
            outcomes.update(run_suite(name, workdir, args.unswapped))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    expected = {} if args.unswapped else expected_failures()
    failed = sorted(t for t, o in outcomes.items() if o == "failed")
    unexpected = [t for t in failed if t not in expected]
    stale = sorted(t for t in expected if outcomes.get(t) != "failed")
    passed = sum(1 for o in outcomes.values() if o == "passed")
    known = len(failed) - len(unexpected)
    for test_id in unexpected:
        print(f"UNEXPECTED FAILURE {test_id}")
    for test_id in stale:
        state = outcomes.get(test_id, "not run")
        print(f"LISTED BUT {state.upper()} {test_id} (remove it from {EXPECTED.name})")
    print(f"{known} expected differences (listed with their reasons in {EXPECTED.name})")
    print(f"{passed} passed, {len(unexpected) + len(stale)} failed")
    return 1 if unexpected or stale or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
