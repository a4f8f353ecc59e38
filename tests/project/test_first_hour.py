"""A fresh clone on a stock Debian ``python3`` with no uv on ``PATH`` runs the README's quick start.

The Makefile installs uv itself, hash-pinned, into the clone's private ``.tools/`` environment;
the system interpreter is never written to (Debian's refuses, PEP 668).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.project.test_demo import assert_the_demo_results

pytestmark = pytest.mark.integration  # runs the demo's own servers and processes

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/bin:/bin"


def stock_environment() -> dict[str, str]:
    """What a new user's shell has: the system's PATH and a home, nothing of this session's."""
    env = {"PATH": SYSTEM_PATH, "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    # The machine's network settings only: where pip and uv download from, through which proxy
    # and trusting which certificates.
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("PIP_", "UV_INDEX", "SSL_CERT_"))
            or k.endswith(("_CA_BUNDLE", "_PROXY", "_proxy"))
        }
    )
    return env


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("first-hour") / "email-worker"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    return clone


def test_the_system_path_has_python3_with_venv_and_no_uv() -> None:
    assert shutil.which("uv", path=SYSTEM_PATH) is None
    python3 = shutil.which("python3", path=SYSTEM_PATH)
    assert python3 is not None
    venv = subprocess.run(
        [python3, "-m", "venv", "--help"], capture_output=True, timeout=30, check=False
    )
    assert venv.returncode == 0, "install Debian's python3-venv"


def test_make_demo_runs_in_a_fresh_clone_with_only_the_system_path(
    fresh_clone: Path, tmp_path: Path
) -> None:
    completed = subprocess.run(
        ["make", "demo"],
        cwd=fresh_clone,
        env={**stock_environment(), "TMPDIR": str(tmp_path)},  # the demo keeps its log there
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert_the_demo_results(completed)
    assert (fresh_clone / ".tools" / "bin" / "uv").is_file()


def test_make_test_runs_in_the_same_clone_with_only_the_system_path(fresh_clone: Path) -> None:
    completed = subprocess.run(
        ["make", "test", "PYTEST_ARGS=tests/project/test_readme.py -q -p no:cacheprovider"],
        cwd=fresh_clone,
        env=stock_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout


def test_the_uv_bootstrap_is_hash_pinned_and_never_touches_the_system_interpreter() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes" in makefile
    assert "-r tools/uv-requirements.txt" in makefile
    assert "pip install --user" not in makefile
    assert "--break-system-packages" not in makefile
    pins = (ROOT / "tools" / "uv-requirements.txt").read_text()
    assert "uv==" in pins
    assert pins.count("--hash=sha256:") >= 10
