"""The application: the ``email-worker`` command line and the wiring behind it.

The layer owns the entry point (:func:`main`, with ``pull``, ``serve``, ``events`` and the
operators' commands), building the runtime from the settings once (:func:`build_runtime`:
Pub/Sub clients, the ledger, the session cache, the handler) and running it: streaming pull
with its health server, the push endpoint under uvicorn (:func:`run_serve`), or the SES events
reader (:func:`run_events`), with graceful shutdown on SIGTERM. It is the only layer that
sees all the others. Names are imported on first use, so that ``email-worker --help`` loads
neither Pub/Sub nor SES nor the ledger.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.app.cli import main
    from worker.app.events_reader import run_events
    from worker.app.runtime import Runtime, build_runtime
    from worker.app.serving import BackgroundServer, run_serve

__all__ = ["BackgroundServer", "Runtime", "build_runtime", "main", "run_events", "run_serve"]

_HOMES = {
    "BackgroundServer": "worker.app.serving",
    "Runtime": "worker.app.runtime",
    "build_runtime": "worker.app.runtime",
    "main": "worker.app.cli",
    "run_events": "worker.app.events_reader",
    "run_serve": "worker.app.serving",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
