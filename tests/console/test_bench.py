"""bench/console_request_page.py, as docs/scaling.md runs it, on a small ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "console_request_page.py"


def test_the_request_page_benchmark_prints_its_percentiles() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--requests", "300", "--lookups", "40"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "300 requests written" in run.stdout
    assert "request page (HTML): p50 " in run.stdout
    assert "JSON twin: p50 " in run.stdout
