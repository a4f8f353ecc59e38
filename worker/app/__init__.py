"""The application: the ``email-worker`` command line and the wiring behind it.

The layer owns the entry point (:func:`main`, with ``pull``, ``serve``, ``events`` and the
operators' commands), opening the clients from the settings once (:func:`open_clients`:
Pub/Sub, the ledger, the SES session cache), building the handler on them
(:func:`build_runtime`) and running a command's main loop under one lifecycle
(:func:`run_until_signalled`: stop signals, the shutdown timeout, the HTTP server, closing
the clients): streaming pull (:func:`run_pull`), the push endpoint under uvicorn
(:func:`run_serve`), or the SES events reader (:func:`run_events`). It is the only layer that
sees all the others. Names are imported on first use, so that ``email-worker --help`` loads
neither Pub/Sub nor SES nor the ledger.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.app.cli import main
    from worker.app.clients import Clients, open_clients
    from worker.app.http_server import BackgroundServer
    from worker.app.lifecycle import run_until_signalled
    from worker.app.pulling import run_pull
    from worker.app.relaying import run_events
    from worker.app.runtime import Runtime, build_runtime
    from worker.app.serving import run_serve

__all__ = [
    "BackgroundServer",
    "Clients",
    "Runtime",
    "build_runtime",
    "main",
    "open_clients",
    "run_events",
    "run_pull",
    "run_serve",
    "run_until_signalled",
]

_HOMES = {
    "BackgroundServer": "worker.app.http_server",
    "Clients": "worker.app.clients",
    "Runtime": "worker.app.runtime",
    "build_runtime": "worker.app.runtime",
    "main": "worker.app.cli",
    "open_clients": "worker.app.clients",
    "run_events": "worker.app.relaying",
    "run_pull": "worker.app.pulling",
    "run_serve": "worker.app.serving",
    "run_until_signalled": "worker.app.lifecycle",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
