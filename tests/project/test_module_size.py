"""The size rule of docs/architecture.md: short functions, and long modules say why.

A module under ``worker/`` may run over 300 lines only when its docstring says why, in the
form ``... over 300 lines: <the reason>``. No function or method may run over 80 lines (the
project aims at 60; the check catches the worst).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"
MODULE_LINES = 300
FUNCTION_LINES = 80
# The agreed phrase: "over 300 lines:" then the reason, a few words at least.
REASON = re.compile(r"over 300 lines: \S[^.]{11,}", re.IGNORECASE)


def _modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def unexplained_long_modules(root: Path) -> list[str]:
    """Modules over the line limit whose docstring does not say why, as ``path (N lines)``."""
    found = []
    for path in _modules(root):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not REASON.search(docstring):
            found.append(f"{_name(path)} ({lines} lines)")
    return found


def long_functions(root: Path) -> list[str]:
    """Functions and methods over the line limit, as ``path:name:lines``."""
    found = []
    for path in _modules(root):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > FUNCTION_LINES:
                    found.append(f"{_name(path)}:{node.name}:{lines}")
    return found


def test_every_module_over_300_lines_states_why_in_its_docstring() -> None:
    unexplained = unexplained_long_modules(WORKER)
    assert unexplained == [], (
        "modules over 300 lines without 'over 300 lines: <reason>' in their docstring: "
        "split them, or state the reason: " + ", ".join(unexplained)
    )


def test_no_function_in_the_worker_runs_over_80_lines() -> None:
    assert long_functions(WORKER) == []


def test_a_long_module_without_a_reason_is_reported(tmp_path: Path) -> None:
    body = "\n".join(f"X{i} = {i}" for i in range(MODULE_LINES))
    (tmp_path / "long.py").write_text(f'"""A module."""\n{body}\n', encoding="utf-8")
    assert unexplained_long_modules(tmp_path) == [f"{tmp_path / 'long.py'} (301 lines)"]


def test_a_long_module_stating_its_reason_passes(tmp_path: Path) -> None:
    body = "\n".join(f"X{i} = {i}" for i in range(MODULE_LINES))
    docstring = '"""A module, over 300 lines: one constant per line, read together."""'
    (tmp_path / "long.py").write_text(f"{docstring}\n{body}\n", encoding="utf-8")
    assert unexplained_long_modules(tmp_path) == []


def test_the_phrase_without_a_reason_of_a_few_words_is_not_enough(tmp_path: Path) -> None:
    body = "\n".join(f"X{i} = {i}" for i in range(MODULE_LINES))
    (tmp_path / "long.py").write_text(f'"""Over 300 lines: long."""\n{body}\n', encoding="utf-8")
    assert len(unexplained_long_modules(tmp_path)) == 1


def test_a_function_over_80_lines_is_reported_with_its_file_name_and_length(
    tmp_path: Path,
) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(FUNCTION_LINES))
    (tmp_path / "mod.py").write_text(f"class A:\n    def run(self):\n{body}\n", encoding="utf-8")
    assert long_functions(tmp_path) == [f"{tmp_path / 'mod.py'}:run:81"]
