"""Which version of its template a request naming none renders: the latest when it was first
claimed, pinned on its ledger record, so every later delivery renders the same one.

:func:`latest_version` resolves "the latest" before the claim (from the template library's
short-lived memory of it, EMAIL_WORKER_TEMPLATE_LATEST_TTL_S), so the claim's own write pins
it; :func:`with_pinned_version` names the pinned version in the request. Should the lookup
before the claim fail (storage unreachable for a moment) but the one at send time succeed,
:func:`template_version` pins it then, in a write of its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from worker.formats.request import EmailRequest
from worker.processing.delivery import Deps
from worker.processing.held_claims import ClaimLost, HeldClaim
from worker.sending.errors import EmailError

if TYPE_CHECKING:  # the template modules load Jinja2: only a template request needs them
    from worker.sending.template_store import TemplateVersion

__all__ = ["latest_version", "template_version", "with_pinned_version"]


def latest_version(request: EmailRequest, deps: Deps) -> int | None:
    """The version ``request`` would render now if it names a template but no version; None
    otherwise, or if it cannot be told (the send step then reports why)."""
    ref = request.template
    if ref is None or ref.version is not None:
        return None
    from worker.sending.template_store import TemplateNotFound

    try:
        return deps.template_library.load(request.service_id, ref.name, None).version
    except (TemplateNotFound, EmailError):
        return None


def with_pinned_version(request: EmailRequest, pinned: int | None) -> EmailRequest:
    """``request`` naming the ``pinned`` version of its template, if it named none."""
    ref = request.template
    if ref is None or ref.version is not None or pinned is None:
        return request
    return replace(request, template=replace(ref, version=pinned))


def template_version(request: EmailRequest, deps: Deps, held: HeldClaim | None) -> TemplateVersion:
    """The version of the template to render: the one named (or pinned by the claim); else
    the latest, pinned now on the claim unless an earlier delivery pinned one.

    Raises the library's errors, `ClaimLost`, and `worker.ledger.LedgerUnavailable`."""
    ref = request.template
    assert ref is not None
    library = deps.template_library
    loaded = library.load(request.service_id, ref.name, ref.version)
    if ref.version is not None or held is None:
        return loaded
    pinned = held.ledger.pin_template_version(held.key, owner=held.owner, version=loaded.version)
    if pinned is None:
        raise ClaimLost
    if pinned == loaded.version:
        return loaded
    return library.load(request.service_id, ref.name, pinned)
