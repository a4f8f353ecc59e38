"""The operators' and support web console (``email-worker console``).

Server-rendered pages (Starlette and Jinja2, no script) that answer the questions people ask
without a terminal: what became of a request, and which dead letters are waiting and why,
with replay and purge under the CLI's rules. Every page has a JSON twin (``?format=json``).
Behind Identity-Aware Proxy it verifies IAP's assertion and gives viewers and operators their
roles; without IAP it serves loopback only. docs/console.md describes it.

The package sits on top of the operators' tools (:mod:`worker.ops`) and the client: it
reads the ledger and the dead-letter subscription the way ``email-worker status`` and
``dlq`` do. Only the command line loads it (import-linter keeps it so), and only this
facade: the web stack is imported when the console starts.
"""

from __future__ import annotations

from worker.console.command import console

__all__ = ["console"]
