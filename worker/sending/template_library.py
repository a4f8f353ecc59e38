"""The worker's templates: each service's store, loaded versions kept, rendering bounded.

A published version never changes, so a version once loaded is kept (up to ``_KEPT``
versions). Which version is "the latest" of a template is looked up in storage (a listing)
at most once per ``latest_ttl_s`` (EMAIL_WORKER_TEMPLATE_LATEST_TTL_S) per service and
template: a version published meanwhile is used once that time has passed. The latest version
does not depend on the language, so one lookup serves all of a template's languages.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from worker.sending.template_render import Rendered, TemplateRenderer
from worker.sending.template_store import TemplateStore, TemplateVersion

__all__ = ["DEFAULT_LATEST_TTL_S", "TemplateLibrary"]

_KEPT = 256
#: EMAIL_WORKER_TEMPLATE_LATEST_TTL_S's default (worker/config/groups.py says so too).
DEFAULT_LATEST_TTL_S = 5.0


class TemplateLibrary:
    """Loads and renders the templates of any service, each only from its own store.

    ``clock``: monotonic seconds, replaced in tests.
    """

    def __init__(
        self,
        *,
        environment: str,
        url: str | None = None,
        credentials: Any = None,
        renderer: TemplateRenderer | None = None,
        latest_ttl_s: float = DEFAULT_LATEST_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.environment = environment
        self.url = url
        self.credentials = credentials
        self.renderer = renderer or TemplateRenderer()
        self.latest_ttl_s = latest_ttl_s
        self._clock = clock
        self._stores: dict[str, TemplateStore] = {}
        self._versions: OrderedDict[tuple[str, str, int], TemplateVersion] = OrderedDict()
        # (service, name) -> (the latest version, when it was looked up)
        self._latest: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def store(self, service_id: str) -> TemplateStore:
        """``service_id``'s own store."""
        with self._lock:
            store = self._stores.get(service_id)
        if store is None:
            store = TemplateStore.for_service(
                service_id, environment=self.environment, url=self.url, credentials=self.credentials
            )
            with self._lock:
                self._stores[service_id] = store
        return store

    def load(self, service_id: str, name: str, version: int | None) -> TemplateVersion:
        """A version of ``service_id``'s template ``name`` (None: the latest published, as
        looked up at most ``latest_ttl_s`` ago)."""
        if version is None:
            version = self._recent_latest(service_id, name)
        if version is not None:
            with self._lock:
                kept = self._versions.get((service_id, name, version))
            if kept is not None:
                return kept
        looked_up_at = self._clock()
        loaded = self.store(service_id).load(name, version)
        with self._lock:
            self._versions[(service_id, name, loaded.version)] = loaded
            while len(self._versions) > _KEPT:
                self._versions.popitem(last=False)
            if version is None:
                self._latest[(service_id, name)] = (loaded.version, looked_up_at)
        return loaded

    def _recent_latest(self, service_id: str, name: str) -> int | None:
        """The latest version of ``name`` if it was looked up less than ``latest_ttl_s`` ago."""
        with self._lock:
            found = self._latest.get((service_id, name))
        if found is None or self._clock() - found[1] >= self.latest_ttl_s:
            return None
        return found[0]

    def render(self, template: TemplateVersion, data: Any, language: str | None = None) -> Rendered:
        """``template`` rendered with ``data`` (see :class:`TemplateRenderer`)."""
        return self.renderer.render(template, data, language)
