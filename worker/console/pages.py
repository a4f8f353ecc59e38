"""The console's pages: each answers one question, in HTML or, with ``?format=json``, JSON.

Each handler builds one document (`request_view`, `dead_letter_view`) and :func:`respond`
renders it with the page's template or returns it as JSON: the twin is the same data. Reads
that block (the ledger, Pub/Sub) run in Starlette's thread pool. Actions are POSTs that pass
:func:`~worker.console.security.checked_form` (CSRF) and need the operator role; each is
logged with who did it and what it did (counts and message ids, never content). A selection
larger than :data:`~worker.console.jobs.INLINE_LIMIT` runs as a background job whose page,
``/jobs/ID``, shows its progress (:mod:`worker.console.jobs`).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from worker.config.logs import get_logger
from worker.console import dead_letter_view as dead
from worker.console.charts import with_charts
from worker.console.iap import AccessDenied, Role
from worker.console.jobs import INLINE_LIMIT, Job, Jobs
from worker.console.recipient_view import recipient_document
from worker.console.request_view import request_document
from worker.console.security import checked_form, identity_of, require
from worker.console.services_view import ServiceWeeks, services_document
from worker.console.sources import Sources

__all__ = ["Pages"]

log = get_logger()
_ACTIONS = ("replay", "purge")


def template_environment() -> Environment:
    """Jinja2 with every value escaped: nothing from a request is markup."""
    return Environment(
        loader=PackageLoader("worker.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )


def _days(raw: str, retention_s: float) -> float:
    """The days to look back: 7 unless given, at most the ledger's retention."""
    try:
        days = float(raw) if raw.strip() else 7.0
    except ValueError:
        days = 7.0
    return min(max(days, 0.0), retention_s / 86400)


class Pages:
    """The handlers, bound to the console's sources and templates."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self._templates = template_environment()
        self.jobs = Jobs()
        self._service_weeks = ServiceWeeks(sources.ledger)

    def respond(
        self, request: Request, template: str, document: dict[str, Any], status: int = 200
    ) -> Response:
        if request.query_params.get("format") == "json":
            return JSONResponse(document, status_code=status)
        identity = identity_of(request)
        html = self._templates.get_template(template).render(
            page=document,
            who=identity.who,
            operator=identity.role >= Role.OPERATOR,
            csrf=request.state.csrf,
        )
        return HTMLResponse(html, status_code=status)

    async def home(self, request: Request) -> Response:
        identity = identity_of(request)
        document = {
            "who": identity.who,
            "role": identity.role.name.lower(),
            "pages": {
                "request": "/request",
                "recipient": "/recipient",
                "dead_letters": "/dead-letters",
                "services": "/services",
            },
        }
        return self.respond(request, "home.html", document)

    async def request_page(self, request: Request) -> Response:
        service_id = request.query_params.get("service", "").strip()
        request_id = request.query_params.get("id", "").strip()
        if not service_id or not request_id:
            document = {"error": "give a service and a request id"}
            return self.respond(request, "home.html", {**document, "who": None}, 400)
        document = await run_in_threadpool(request_document, self.sources, service_id, request_id)
        return self.respond(request, "request.html", document, 200 if document["found"] else 404)

    async def recipient(self, request: Request) -> Response:
        """GET: the form. POST: what was sent to the posted address (POST keeps it out of
        URLs, and so out of request logs)."""
        if request.method == "GET":
            return self.respond(request, "recipient.html", {"recipient": None, "emails": []})
        form = await checked_form(request)
        address = (form.get("address") or [""])[0].strip()
        days = _days((form.get("days") or [""])[0], self.sources.settings.ledger.retention_s)
        if "@" not in address or len(address) > 320:
            document: dict[str, Any] = {
                "recipient": None,
                "emails": [],
                "error": "give an email address",
            }
            return self.respond(request, "recipient.html", document, 400)
        document = await run_in_threadpool(recipient_document, self.sources, address, days)
        return self.respond(request, "recipient.html", document)

    async def dead_letters(self, request: Request) -> Response:
        filters = dead.Filters.from_query(request.query_params)
        document = await run_in_threadpool(dead.list_document, self.sources, filters)
        return self.respond(request, "dead_letters.html", document)

    async def services(self, request: Request) -> Response:
        document = await run_in_threadpool(
            services_document, self.sources, None, self._service_weeks
        )
        if request.query_params.get("format") != "json":
            document = with_charts(document)
        return self.respond(request, "services.html", document)

    async def confirm(self, request: Request) -> Response:
        require(request, Role.OPERATOR)
        action = request.query_params.get("action", "")
        if action not in _ACTIONS:
            raise AccessDenied(400, "unknown_action")
        ids = request.query_params.getlist("message_id")
        filters = dead.Filters.from_query(request.query_params, ids)
        document = await run_in_threadpool(dead.confirm_document, self.sources, filters, action)
        return self.respond(request, "confirm.html", document)

    async def replay(self, request: Request) -> Response:
        return await self._act(request, "replay", dead.replay_selected)

    async def purge(self, request: Request) -> Response:
        return await self._act(request, "purge", dead.purge_selected)

    async def _act(self, request: Request, action: str, act: Any) -> Response:
        require(request, Role.OPERATOR)
        form = await checked_form(request)
        ids = sorted({i for i in form.get("message_id", []) if i})
        if not ids:
            raise AccessDenied(400, "nothing_selected")
        who = identity_of(request).who
        if len(ids) > INLINE_LIMIT:
            job = self.jobs.start(
                action,
                who,
                len(ids),
                lambda advance: act(self.sources, ids, advance),
                lambda job: _log_job(job, ids),
            )
            return _job_started(request, job)
        document = await run_in_threadpool(act, self.sources, ids)
        _log_action(action, who, ids, document)
        return self.respond(request, "done.html", document)

    async def job(self, request: Request) -> Response:
        """A replay or purge in the background: its progress as it goes, then its outcome
        (streamed, see :mod:`worker.console.jobs`)."""
        require(request, Role.OPERATOR)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return self.respond(request, "job.html", {"found": False}, 404)
        if request.query_params.get("format") == "json":
            return JSONResponse({"found": True, **job.document()})
        identity = identity_of(request)
        chunks = self._templates.get_template("job.html").generate(
            page={"found": True, **job.document()},
            steps=job.steps(),
            outcome=job.document,
            who=identity.who,
            operator=True,
            csrf=request.state.csrf,
        )
        return StreamingResponse(chunks, media_type="text/html; charset=utf-8")


def _job_started(request: Request, job: Job) -> Response:
    """The answer to a POST that started ``job``: its page (303), or for scripts 202 and
    the job's document."""
    location = f"/jobs/{job.id}"
    if request.query_params.get("format") == "json":
        document = {"location": location, **job.document()}
        return JSONResponse(document, status_code=202, headers={"Location": location})
    return RedirectResponse(location, status_code=303)


def _log_action(
    action: str, who: str, ids: list[str], document: dict[str, Any], job_id: str | None = None
) -> None:
    """One line per replay or purge: who, how many, and the message ids done."""
    log.info(
        f"console {action}",
        who=who,
        job=job_id,
        selected=len(ids),
        done=len(document["done"]),
        refused=len(document["refused"]),
        failed=len(document["failed"]),
        not_found=len(document["not_found"]),
        message_ids=document["done"],
    )


def _log_job(job: Job, ids: list[str]) -> None:
    if job.result is not None:
        _log_action(job.action, job.who, ids, job.result, job.id)
    else:
        log.warning(
            f"console {job.action} stopped",
            who=job.who,
            job=job.id,
            selected=len(ids),
            processed=job.processed,
            error=job.error,
        )
