"""Running the console: open its sources, build the app, serve it with uvicorn."""

from __future__ import annotations

import uvicorn

from worker.config.logs import get_logger
from worker.config.settings import Settings
from worker.console.app import console_app
from worker.console.iap import IapVerifier
from worker.console.sources import open_sources
from worker.ops.commands.ledger import open_for_lookup

__all__ = ["run_console", "verifier_for"]

log = get_logger()


def verifier_for(settings: Settings) -> IapVerifier | None:
    """The IAP verifier the settings ask for, or None (loopback, no authentication)."""
    console = settings.console
    if console.iap_audience is None:
        return None
    return IapVerifier(
        audience=console.iap_audience,
        certs_url=console.iap_certs_url,
        viewers=console.viewers,
        operators=console.operators,
    )


def run_console(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's own handling)."""
    sources = open_sources(settings, open_for_lookup(settings))
    verifier = verifier_for(settings)
    host, port = settings.console.host, settings.http.port or settings.console.port
    log.info(
        "console listening",
        url=f"http://{host}:{port}/",
        iap=verifier is not None,
    )
    try:
        uvicorn.run(
            console_app(sources, verifier),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            proxy_headers=verifier is not None,
        )
    finally:
        sources.close()
