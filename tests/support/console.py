"""The console on a test stack: in process (Starlette's TestClient) or as a real server
(``email-worker console`` for the browser tests), over the stack's SQLite ledger and its
dead-letter subscription in the Pub/Sub emulator."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

from tests.support.worker_stack import Stack
from worker.console.app import console_app
from worker.console.serving import verifier_for
from worker.console.sources import Sources, open_sources
from worker.ledger import Ledger, SqliteLedger

_CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    client: TestClient
    sources: Sources

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def json(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params={**params, "format": "json"})
        assert response.status_code in (200, 404), response.text
        return response.json()

    def csrf_token(self, headers: dict[str, str] | None = None) -> str:
        """The token the console's forms carry (and its cookie now set on the client)."""
        self.client.get("/", headers=headers)
        token = self.client.cookies.get("csrf") or self.client.cookies.get("__Host-csrf")
        assert token
        return str(token)

    def act(
        self, action: str, message_ids: list[str], headers: dict[str, str] | None = None
    ) -> Any:
        """Post a replay or purge of ``message_ids`` as the confirmation form does."""
        form = {"csrf": self.csrf_token(headers), "message_id": message_ids}
        return self.client.post(
            f"/dead-letters/{action}", data=form, headers={**(headers or {}), "Accept": "*/*"}
        )


def stack_ledger(stack: Stack) -> SqliteLedger:
    settings = stack.settings()
    path = stack.config_dir.resolve() / "ledger.db"
    return SqliteLedger(path, claim_lease_s=60, retention_s=settings.ledger.retention_s)


@contextmanager
def console_on(
    stack: Stack, *, https: bool = False, ledger: Ledger | None = None, **overrides: str
) -> Iterator[Console]:
    """The console over ``stack`` (``overrides`` are settings) and its SQLite ledger, or
    ``ledger``, in process."""
    settings = stack.settings(**overrides)
    sources = open_sources(settings, ledger or stack_ledger(stack))
    app = console_app(sources, verifier_for(settings))
    base_url = "https://console.test" if https else "http://127.0.0.1"
    try:
        with TestClient(app, base_url=base_url, raise_server_exceptions=True) as client:
            yield Console(client, sources)
    finally:
        sources.close()
