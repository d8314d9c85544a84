"""The Python x Django matrix, run against the built wheel: ``nox`` (or ``nox -s tests``).

Each ``tests`` session installs ``dist/django_auth401-*.whl`` (``nox -s build`` makes it, and
any session builds it when it is missing) into a fresh virtualenv, copies ``tests/``,
``example_project/``, ``benchmarks/``, ``manage.py`` and the docs into a temporary directory and
runs pytest there, so that ``import auth401`` can only find the installed wheel (the test
``test_packaging.py::test_auth401_is_imported_from_the_wheel`` asserts it).

Interpreters are found on ``PATH`` (``python3.12``, ``python3.13``); ``.ci/run`` puts pyenv's
there.  A missing interpreter fails the session (``--error-on-missing-interpreters`` is on).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["build", "tests", "tests_oldest_drf", "mypy", "docs"]

DJANGO_52 = "Django>=5.2,<6.0"
DJANGO_60 = "Django>=6.0,<6.1"
# Python x Django, as in pyproject's classifiers (Django 6 needs Python >= 3.12).
MATRIX = [
    ("3.11", DJANGO_52),
    ("3.12", DJANGO_52),
    ("3.12", DJANGO_60),
    ("3.13", DJANGO_60),
]
COPIED = [
    "tests",
    "example_project",
    "benchmarks",
    "manage.py",
    "README.md",
    "docs",
    "pyproject.toml",
    "mkdocs.yml",
    ".ci",
]


def _wheel(session: nox.Session) -> Path:
    wheels = sorted(DIST.glob("django_auth401-*-py3-none-any.whl"))
    if not wheels:
        session.log("dist/ has no wheel: building one")
        session.install("build")
        session.run("python", "-m", "build", "--outdir", str(DIST), str(ROOT))
        wheels = sorted(DIST.glob("django_auth401-*-py3-none-any.whl"))
    if len(wheels) != 1:
        session.error(f"expected one wheel in dist/, found {[w.name for w in wheels]}")
    return wheels[0]


def _run_suite_on_wheel(session: nox.Session, *requirements: str) -> None:
    wheel = _wheel(session)
    session.install(f"{wheel}[test]", *requirements)
    workdir = Path(session.create_tmp()) / "suite"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source,
                workdir / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*", "results", ".data"),
            )
        elif source.exists():
            shutil.copy2(source, workdir / name)
    session.chdir(workdir)
    session.run(
        "python",
        "-c",
        "import sys, django, rest_framework, auth401; "
        "print('Python', sys.version.split()[0], 'Django', django.get_version(), "
        "'DRF', rest_framework.VERSION, 'auth401 from', auth401.__file__)",
    )
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"AUTH401_WHEEL": str(wheel)},
    )


@nox.session(python="3.11")
def build(session: nox.Session) -> None:
    """sdist + wheel into dist/, then ``twine check``."""
    session.install("build", "twine")
    shutil.rmtree(DIST, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(DIST), str(ROOT))
    session.run("twine", "check", "--strict", *map(str, sorted(DIST.iterdir())))


@nox.session
@nox.parametrize(
    ("python", "django"),
    [nox.param(python, django, id=f"{python}-django{django[8:11]}") for python, django in MATRIX],
)
def tests(session: nox.Session, django: str) -> None:
    """The whole suite against the installed wheel, on SQLite + local-memory cache."""
    _run_suite_on_wheel(session, django)


@nox.session(python="3.11")
def tests_oldest_drf(session: nox.Session) -> None:
    """Once with the oldest Django REST framework release auth401 supports."""
    _run_suite_on_wheel(session, DJANGO_52, "djangorestframework>=3.15,<3.16")


@nox.session(python="3.11")
def mypy(session: nox.Session) -> None:
    session.install("-e", f"{ROOT}[typing,test]")
    session.run("mypy")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    session.install("mkdocs>=1.6")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")
