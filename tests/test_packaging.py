"""The release: the wheel holds what the app needs at run time (migrations, locale, templates,
py.typed) and nothing else (no tests, no example project), and under the nox matrix the suite
really runs against that installed wheel, not the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import auth401

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(auth401.__file__).resolve().parent
#: set by noxfile.py: the wheel this suite runs against
WHEEL = os.environ.get("AUTH401_WHEEL")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if WHEEL:
        return Path(WHEEL)
    if not (ROOT / "pyproject.toml").exists() or not (ROOT / "auth401").is_dir():
        pytest.skip("no checkout to build a wheel from, and AUTH401_WHEEL is not set")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        # sdist first, then the wheel from the sdist (build's default): a stale build/ in the
        # checkout cannot leak into it, and the sdist is shown to be complete
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("django_auth401-*-py3-none-any.whl")
    return built


def _package_files(pattern: str) -> set[str]:
    return {
        "auth401/" + path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.glob(pattern)
        if "__pycache__" not in path.parts
    }


def test_wheel_holds_the_run_time_files_and_nothing_else(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert tops == {"auth401", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "auth401/py.typed" in names
    migrations = _package_files("migrations/*.py")
    assert "auth401/migrations/0001_initial.py" in migrations
    assert migrations <= names
    locale = _package_files("locale/*/LC_MESSAGES/django.*")
    assert {
        "auth401/locale/de/LC_MESSAGES/django.po",
        "auth401/locale/de/LC_MESSAGES/django.mo",
    } <= locale
    assert locale <= names
    assert any(n.endswith(".mo") for n in locale)
    templates = _package_files("templates/**/*.html")
    assert templates
    assert templates <= names
    assert not [n for n in names if n.startswith(("tests/", "example_project/", "benchmarks/"))]
    assert not [n for n in names if "auth401_seed_events" in n or n.endswith((".pyc", ".sqlite3"))]
    # every Python module of the package is there (nothing left behind by package discovery)
    assert _package_files("**/*.py") <= names


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        [metadata_name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    assert "Name: django-auth401\n" in metadata
    assert "Requires-Python: >=3.11\n" in metadata
    assert "Classifier: Typing :: Typed\n" in metadata
    assert "Requires-Dist: Django>=5.2\n" in metadata
    assert "Description-Content-Type: text/markdown\n" in metadata


def test_auth401_is_imported_from_the_wheel():
    """Under nox, ``import auth401`` must find the installed wheel, never a checkout."""
    print("auth401 imported from", auth401.__file__)
    if not WHEEL:
        pytest.skip("not a wheel run (nox sets AUTH401_WHEEL)")
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert PACKAGE.parent == site_packages, auth401.__file__
    assert not (Path.cwd() / "auth401").exists()
    # the installed files are the wheel's own
    with zipfile.ZipFile(WHEEL) as archive:
        assert archive.read("auth401/conf.py") == (PACKAGE / "conf.py").read_bytes()
