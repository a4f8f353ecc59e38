"""`make lint` enforces the layers of docs/architecture.md with import-linter.

The contracts live in pyproject.toml. Each case below copies the package, adds one import
that goes against them and checks that lint-imports (run by `make lint`) fails on the copy
and names the contract, while the tree as it is passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # From ``root``, whose copy of the package comes first on the path (lint-imports adds the
    # working directory; PYTHONPATH makes sure the installed worker does not win).
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "300"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "worker", tmp_path / "worker", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(root: Path, module: str, statement: str) -> None:
    path = root / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_lint_target_runs_lint_imports() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    recipe = subprocess.run(
        ["make", "-n", "-B", "lint"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert ".venv/bin/lint-imports" in recipe


def test_the_package_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        # A lower layer reaching up: the formats know nothing of processing.
        (
            "worker.formats.result",
            "from worker.processing.pipeline import Outcome  # noqa",
            "The delivery path",
        ),
        # The sending library does not read requests: siblings of one layer are independent.
        (
            "worker.sending.envelope",
            "from worker.formats.request import EmailRequest  # noqa",
            "The delivery path",
        ),
        # Imports inside functions count too.
        (
            "worker.processing.pipeline",
            "def _late() -> None:\n    from worker.transports import pull  # noqa",
            "The delivery path",
        ),
        # Processing's steps: admission, below the send and the claim, knows no settlement.
        (
            "worker.processing.admission",
            "from worker.processing.outputs import Outputs  # noqa",
            "Processing in steps",
        ),
        # The worker's runtime under the operators' tools.
        (
            "worker.ops.dead_letters",
            "from worker.processing.outputs import Outputs  # noqa",
            "The operators' tools and the client do not load the delivery path",
        ),
        (
            "worker.processing.outputs",
            "from worker.client import pubsub_rpc  # noqa",
            "The delivery path does not load the operators' tools or the client",
        ),
        ("worker.transports.pull", "from worker.transports import push  # noqa", "pull and push"),
        # The events reader sits above the formats and below the app, apart from the rest.
        (
            "worker.formats.event",
            "from worker.events import event_records  # noqa",
            "The SES events reader",
        ),
        (
            "worker.events.reader",
            "from worker.processing.metrics import Metrics  # noqa",
            "The events reader loads neither",
        ),
        (
            "worker.ops.topology",
            "from worker.events import EventsReader  # noqa",
            "Neither the delivery path nor the operators' tools load the events reader",
        ),
        # The console is on top: nothing but the command line loads it, and only its facade.
        (
            "worker.ops.selection",
            "from worker.console import console  # noqa",
            "The operators' side",
        ),
        (
            "worker.processing.outputs",
            "from worker.console import console  # noqa",
            "Nothing in the worker loads the console",
        ),
        (
            "worker.app.serving",
            "from worker.console import console  # noqa",
            "only the CLI loads the console",
        ),
        (
            "worker.app.cli",
            "from worker.console.app import console_app  # noqa",
            "only the CLI loads the console",
        ),
        (
            "worker.console.pages",
            "from worker.processing.outputs import Outputs  # noqa",
            "The console does not load the delivery path",
        ),
        # The cycle that message and request once had, broken by worker.formats.mime.
        ("worker.formats.mime", "from worker.formats import message  # noqa", "cycles"),
    ],
)
def test_an_import_against_the_layers_fails_lint_imports(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    root = copy_of_the_package(tmp_path)
    add_import(root, module, statement)
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout
    # A contract with ignored imports says so after the verdict: "BROKEN (1 ignored import)".
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in f" {line}"]
    assert any(contract in line for line in broken), result.stdout


def test_a_module_outside_every_layer_fails_lint_imports(tmp_path: Path) -> None:
    root = copy_of_the_package(tmp_path)
    (root / "worker" / "stray.py").write_text('"""Belongs to no layer."""\n')
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout
    assert "stray" in result.stdout
