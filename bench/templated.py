"""The benchmark's templated requests: ``run.py``'s plain email, named by a template with data.

``--contenders ...,templated`` adds a contender: the worker (with the same settings) given
requests that name a template instead of carrying subject, text and HTML. The template is
made from the plain request itself, each of its values replaced by a placeholder, and
published once in the benchmark's own directory (``EMAIL_WORKER_TEMPLATES_URL``); its data are
those values, so the worker sends the same email: :func:`check_equivalent` renders it before
the first round and refuses to go on if the subject, text or HTML differ. The requests name no
version (the latest, as most services would), and the template has a JSON Schema, so every
step a templated request adds is measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.sending.template_library import TemplateLibrary
from worker.sending.template_store import TemplateStore

__all__ = ["KIND", "check_equivalent", "document", "publish"]

KIND = "templated"
TEMPLATE = "invoice"
ENVIRONMENT = "production"
#: The plain request's values, by the placeholder that replaces them.
VALUES = {"name": "Alice", "invoice": "INV-2024-0042", "amount": "129.00 EUR"}
SCHEMA = {
    "type": "object",
    "required": [*VALUES, "marker"],
    "properties": {key: {"type": "string"} for key in (*VALUES, "marker")},
}


def _placeholders(text: str, marker: str) -> str:
    text = text.replace(marker, "{{ marker }}")
    for key, value in VALUES.items():
        text = text.replace(value, "{{ " + key + " }}")
    return text


def publish(root: Path, service: str, plain: dict[str, Any], marker: str) -> str:
    """Publish the template made from ``plain`` (a request whose marker is ``marker``) as
    ``service``'s template under ``root``; return the EMAIL_WORKER_TEMPLATES_URL to read it."""
    url = f"file://{root}/{{environment}}/{{service_id}}"
    store = TemplateStore.for_service(service, environment=ENVIRONMENT, url=url)
    files = {
        f"en.{part}": _placeholders(plain[part], marker).encode() for part in ("subject", "text")
    }
    files["en.html"] = _placeholders(plain["html"], marker).encode()
    manifest = json.dumps({"default_language": "en", "schema": SCHEMA}).encode()
    store.publish(TEMPLATE, manifest, files)
    return url


def document(plain: dict[str, Any], marker: str) -> bytes:
    """The templated request for ``plain`` (whose marker is ``marker``)."""
    request = {key: value for key, value in plain.items() if key not in ("subject", "text", "html")}
    request["template"] = {"name": TEMPLATE, "data": {**VALUES, "marker": marker}}
    return json.dumps(request).encode()


def check_equivalent(url: str, service: str, plain: dict[str, Any], marker: str) -> None:
    """Raise SystemExit unless the template renders ``plain``'s subject, text and HTML (Jinja
    drops the text's last line ending; the MIME writer ends the part with one either way)."""
    library = TemplateLibrary(environment=ENVIRONMENT, url=url)
    templated = json.loads(document(plain, marker))
    version = library.load(service, TEMPLATE, None)
    rendered = library.render(version, templated["template"]["data"])
    differ = [
        part
        for part, got in (("subject", rendered.subject), ("text", rendered.text))
        if got.rstrip("\n") != plain[part].rstrip("\n")
    ]
    if rendered.html != plain["html"]:
        differ.append("html")
    if differ:
        raise SystemExit(f"the templated request renders a different {', '.join(differ)}")
