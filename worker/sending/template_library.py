"""The worker's templates: each service's store, loaded versions kept, rendering bounded.

A published version never changes, so a version once loaded is kept (up to ``_KEPT``
versions); "the latest" is looked up in storage each time it is asked for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from worker.sending.template_render import Rendered, TemplateRenderer
from worker.sending.template_store import TemplateStore, TemplateVersion

__all__ = ["TemplateLibrary"]

_KEPT = 256


class TemplateLibrary:
    """Loads and renders the templates of any service, each only from its own store."""

    def __init__(
        self,
        *,
        environment: str,
        url: str | None = None,
        credentials: Any = None,
        renderer: TemplateRenderer | None = None,
    ) -> None:
        self.environment = environment
        self.url = url
        self.credentials = credentials
        self.renderer = renderer or TemplateRenderer()
        self._stores: dict[str, TemplateStore] = {}
        self._versions: OrderedDict[tuple[str, str, int], TemplateVersion] = OrderedDict()
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
        """A version of ``service_id``'s template ``name`` (None: the latest published)."""
        if version is not None:
            with self._lock:
                kept = self._versions.get((service_id, name, version))
            if kept is not None:
                return kept
        loaded = self.store(service_id).load(name, version)
        with self._lock:
            self._versions[(service_id, name, loaded.version)] = loaded
            while len(self._versions) > _KEPT:
                self._versions.popitem(last=False)
        return loaded

    def render(self, template: TemplateVersion, data: Any, language: str | None = None) -> Rendered:
        """``template`` rendered with ``data`` (see :class:`TemplateRenderer`)."""
        return self.renderer.render(template, data, language)
