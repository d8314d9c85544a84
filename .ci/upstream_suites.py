"""Run simplejwt's and DRF's whole test suites with auth401 swapped in; compare with the
expected differences (``.ci/upstream_expected_failures.txt``).

Fetches the sdists of the *installed* versions (``pip download --no-binary :all: --no-deps``,
cached), installs the test dependencies each suite declares (DRF's ``test`` and ``optional``
dependency groups, simplejwt's ``test`` and ``python-jose`` extras) that this Python's
environment lacks, runs every file of their ``tests/`` with the ``upstream_shim`` plugin, and reads
each test's outcome and failure message from JUnit XML.

An expected difference names a test *and* the assertion it fails on (a regular expression
searched in the failure's message): CI fails on a failure the list does not name, on a listed
test that fails with another message (a 500, a different assertion), and on a listed test that
passes (the list must stay exact).  Per suite it prints: passed, listed (expected
differences), skipped.  The last line is ``N passed, N failed, N skipped`` (failed: not as
listed).

    python .ci/upstream_suites.py [--unswapped] [--keep] [--settings JSON] [--section NAME]

``--settings '{"RESPONSE_FORMAT": "..."}'`` runs the suites with these ``AUTH401`` settings on
top of the shim's; ``--section`` names that pass's own differences section of the list (the
list's ``upstream`` and ``pending`` sections apply to every pass).  ``--unswapped`` runs
upstream's own classes, expecting only the ``upstream`` section.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "upstream_expected_failures.txt"
CACHE = Path(os.environ.get("AUTH401_UPSTREAM_CACHE", Path.home() / ".cache" / "auth401-upstream"))

#: test dependencies CI does not need: coverage, parallel runs, tox itself; pytest is the venv's
NOT_NEEDED = {"pytest", "pytest-cov", "pytest-xdist", "tox"}


@dataclass(frozen=True)
class Suite:
    distribution: str
    #: what runs: the whole tests/ directory
    paths: tuple[str, ...]
    #: extra pytest options (the suite's own addopts that matter)
    options: tuple[str, ...]
    #: where the suite declares its test dependencies: ("dependency-groups" | "extras", names)
    requirements: tuple[str, tuple[str, ...]]


SUITES = (
    Suite(
        "djangorestframework-simplejwt",
        ("tests",),
        (),
        ("extras", ("test", "python-jose")),
    ),
    Suite(
        "djangorestframework",
        ("tests",),
        ("--no-migrations",),
        ("dependency-groups", ("test", "optional")),
    ),
)


@dataclass(frozen=True)
class Expected:
    reason: str
    #: searched in the failure's message (pytest's one-line crash message)
    assertion: re.Pattern[str]


@dataclass(frozen=True)
class Outcome:
    state: str  # passed, failed, skipped
    message: str = ""


#: sections that apply to every pass with auth401 swapped in (see the list's header)
ALWAYS = ("upstream", "pending")


def expected_failures(path: Path, sections: tuple[str, ...]) -> dict[str, Expected]:
    """``suite::node id`` -> its reason and assertion, from the named ``## sections`` of
    ``path``: a ``# key: reason`` line, then one ``suite::module::test | regular expression``
    line per test it explains."""
    found: dict[str, Expected] = {}
    seen: set[str] = set()
    section = reason = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if text.startswith("## "):
            section = text[3:].strip()
            seen.add(section)
            reason = ""
            continue
        if not text or text.startswith("#") or section not in sections:
            if text.startswith("# ") and section:
                reason = text[2:].strip()
            continue
        test_id, separator, pattern = text.partition(" | ")
        if not separator or not pattern.strip() or not reason:
            sys.exit(f"{path.name}:{number}: want '<test> | <regex>' under a '# key: reason'")
        if test_id.strip() in found:
            sys.exit(f"{path.name}:{number}: {test_id.strip()} is listed twice")
        found[test_id.strip()] = Expected(reason, re.compile(pattern.strip()))
    missing = [name for name in sections if name not in seen]
    if missing:
        sys.exit(f"{path.name} has no section {', '.join(missing)}")
    return found


def sdist(distribution: str, version: str) -> Path:
    """The sdist of ``distribution==version`` (downloaded once into the cache)."""
    global CACHE
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: download into a temporary directory
        CACHE = Path(tempfile.mkdtemp(prefix="auth401-upstream-cache-"))
    normalised = distribution.replace("-", "_").lower()
    for archive in CACHE.glob("*.tar.gz"):
        if archive.name.lower().replace("-", "_") == f"{normalised}_{version}.tar.gz":
            return archive
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "-qq", "--disable-pip-version-check"),
            *("--no-binary", ":all:", "--no-deps", "--dest", str(CACHE)),
            f"{distribution}=={version}",
        ],
        check=True,
    )
    return sdist(distribution, version)


def declared_requirements(suite: Suite, root: Path) -> list[str]:
    """The test dependencies the suite's sdist declares (dependency groups in pyproject.toml,
    or extras in setup.py), less NOT_NEEDED."""
    kind, names = suite.requirements
    found: list[str] = []
    if kind == "dependency-groups":
        groups = tomllib.loads((root / "pyproject.toml").read_text())["dependency-groups"]
        for name in names:
            found += [r for r in groups[name] if isinstance(r, str)]
    else:
        tree = ast.parse((root / "setup.py").read_text())
        extras = next(
            ast.literal_eval(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "extras_require" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        )
        for name in names:
            found += extras[name]
    keep = []
    for requirement in found:
        project = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()
        if project.replace("_", "-") not in NOT_NEEDED:
            keep.append(requirement)
    return keep


def install(requirements: list[str]) -> None:
    """Install the requirements that are missing; an installed project is kept at its version
    (the suites run against the environment's versions, as they run against its Django), and
    said so when the suite declares another."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            print(f"   keeping {requirement.name} {installed} (the suite declares {text})")
    if missing:
        print(f"   installing {' '.join(missing)}", flush=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "install", "-qq", "--disable-pip-version-check"),
                *missing,
            ],
            check=True,
        )


def run_suite(suite: Suite, workdir: Path, unswapped: bool, settings: str) -> dict[str, Outcome]:
    """Outcome per test id (``distribution::classname::name``)."""
    name = suite.distribution
    version = metadata.version(name)
    target = workdir / name
    with tarfile.open(sdist(name, version)) as archive:
        root = archive.getnames()[0].split("/")[0]
        archive.extractall(workdir, filter="data")
    shutil.move(workdir / root, target)
    requirements = declared_requirements(suite, target)
    print(f"== {name} {version}: test dependencies {' '.join(requirements)}", flush=True)
    install(requirements)
    report = workdir / f"{name}.xml"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # the suite's own tests package first; this checkout's auth401 whatever the venv installed
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(HERE), str(HERE.parent)])
    env["AUTH401_UNSWAPPED"] = "1" if unswapped else "0"
    env["AUTH401_SHIM_SETTINGS"] = settings
    print(f"== {name} {version}: {' '.join(suite.paths)}", flush=True)
    started = time.monotonic()
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "upstream_shim"),
            *("-p", "no:cacheprovider", "-p", "no:randomly"),
            *("--rootdir", str(target), "-c", os.devnull, "-q", "--tb=short"),
            *("-o", "addopts=", "-W", "ignore", f"--junitxml={report}"),
            *suite.options,
            *suite.paths,
        ],
        cwd=target,
        env=env,
        check=False,
        # pytest's own summary counts the expected differences as failures: only this
        # script's verdict (below) is printed, pytest's output only when it wrote no report
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if not report.exists():
        print(run.stdout[-6000:], run.stderr[-3000:])
        print(f"{name}: pytest wrote no report (it could not start)")
        return {f"{name}::(suite did not start)": Outcome("failed", "no report")}
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = f"{name}::{case.get('classname', '')}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = problem.get("message") or (problem.text or "").strip()
            # several phases of one test (a failing call and a failing teardown): keep all
            if test_id in outcomes and outcomes[test_id].state == "failed":
                message = f"{outcomes[test_id].message}\n{message}"
            outcomes[test_id] = Outcome("failed", message)
        elif test_id in outcomes:
            continue  # a teardown entry of a test already recorded
        elif case.find("skipped") is not None:
            outcomes[test_id] = Outcome("skipped")
        else:
            outcomes[test_id] = Outcome("passed")
    print(f"== {name} {version}: ran in {seconds:.0f} s", flush=True)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unswapped", action="store_true", help="upstream's own classes")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--settings", default="{}", help="AUTH401 settings (JSON) on top of the shim's"
    )
    parser.add_argument("--expected", type=Path, default=EXPECTED, help="the expected list")
    parser.add_argument(
        "--section", default="differences", help="this pass's differences section in the list"
    )
    parser.add_argument(
        "--suite",
        action="append",
        choices=[s.distribution for s in SUITES],
        help="run only this suite (repeatable; listed tests of the others are not checked)",
    )
    args = parser.parse_args()
    if not isinstance(json.loads(args.settings), dict):
        parser.error("--settings must be a JSON object")
    sections = ("upstream",) if args.unswapped else (args.section, *ALWAYS)
    expected = expected_failures(args.expected, sections)
    print(f"== AUTH401 settings {args.settings}; expected: {', '.join(sections)}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="auth401-upstream-"))
    suites: dict[str, dict[str, Outcome]] = {}
    try:
        for suite in SUITES:
            if args.suite and suite.distribution not in args.suite:
                continue
            suites[suite.distribution] = run_suite(suite, workdir, args.unswapped, args.settings)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    outcomes = {t: o for found in suites.values() for t, o in found.items()}
    problems: list[str] = []
    for test_id, outcome in sorted(outcomes.items()):
        if outcome.state != "failed":
            continue
        listed = expected.get(test_id)
        first_line = outcome.message.splitlines()[0] if outcome.message else ""
        if listed is None:
            problems.append(f"UNEXPECTED FAILURE {test_id}\n    {first_line}")
        elif not listed.assertion.search(outcome.message):
            problems.append(
                f"LISTED, BUT FAILED ON ANOTHER ASSERTION {test_id}\n"
                f"    expected /{listed.assertion.pattern}/\n    got: {first_line}"
            )
    for test_id in sorted(expected):
        if test_id.split("::")[0] not in suites:
            continue
        if outcomes.get(test_id, Outcome("not run")).state != "failed":
            state = outcomes.get(test_id, Outcome("not run")).state.upper()
            problems.append(f"LISTED BUT {state} {test_id} (remove it from {args.expected.name})")
    for problem in problems:
        print(problem)
    total = {"passed": 0, "listed": 0, "skipped": 0}
    for name, found in suites.items():
        states = [o.state for o in found.values()]
        listed = sum(
            1
            for t, o in found.items()
            if o.state == "failed" and t in expected and expected[t].assertion.search(o.message)
        )
        counts = {
            "passed": states.count("passed"),
            "listed": listed,
            "skipped": states.count("skipped"),
        }
        for key, value in counts.items():
            total[key] += value
        print(
            f"== {name} {metadata.version(name)}: {counts['passed']} passed, "
            f"{counts['listed']} listed (expected differences), {counts['skipped']} skipped, "
            f"{len(states)} tests"
        )
    print(f"{total['listed']} expected differences (listed with reasons in {args.expected.name})")
    print(f"{total['passed']} passed, {len(problems)} failed, {total['skipped']} skipped")
    return 1 if problems or not outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
