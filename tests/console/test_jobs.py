"""Replays and purges of large selections run as background jobs whose page shows progress,
reloading itself without script, then the outcome; and each is logged with who did it."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from google.api_core.exceptions import ServiceUnavailable
from starlette.applications import Starlette
from starlette.routing import Route
from structlog.testing import capture_logs

from tests.console.common import dead_lettered
from tests.console.test_iap import OPERATOR, VIEWER, as_user
from tests.support.console import Console, console_on
from tests.support.iap_keys import AUDIENCE, IapKeys
from tests.support.ports import free_port
from tests.support.worker_stack import Stack
from worker.console.jobs import INLINE_LIMIT, Job, Jobs
from worker.console.security import CONTENT_SECURITY_POLICY

#: What a purge of one dead letter reports (dead_letter_view.purge_selected).
OUTCOME: dict[str, Any] = {
    "action": "purge",
    "target": "projects/p/subscriptions/s",
    "done": ["m"],
    "refused": {},
    "failed": {},
    "not_removed": {},
    "skipped": [],
    "not_found": [],
}


def wait_until_finished(job: Job, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.finished


def held_work(release: threading.Event, first: int) -> Any:
    """Work that deals with ``first`` dead letters, then waits for ``release``."""

    def work(advance: Any) -> dict[str, Any]:
        advance(first)
        release.wait(10)
        return OUTCOME

    return work


def test_a_job_reports_its_progress_then_its_outcome() -> None:
    release, ended = threading.Event(), list[Job]()
    job = Jobs().start("purge", "local", 60, held_work(release, 20), ended.append)
    deadline = time.monotonic() + 5
    while job.document()["processed"] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.document()["processed"] == 20
    assert not job.document()["finished"]
    release.set()
    wait_until_finished(job)
    document = job.document()
    assert (document["processed"], document["total"], document["error"]) == (60, 60, None)
    assert document["result"] == OUTCOME
    assert ended == [job]


def test_a_job_that_cannot_reach_pubsub_says_so_and_is_finished() -> None:
    def work(advance: Any) -> dict[str, Any]:
        raise ServiceUnavailable("emulator down")

    ended: list[Job] = []
    job = Jobs().start("replay", "local", 60, work, ended.append)
    wait_until_finished(job)
    assert job.result is None
    assert job.error is not None
    assert job.error.startswith("Pub/Sub cannot be used now")
    assert ended == [job]


def test_only_the_latest_jobs_are_kept_and_each_id_is_unguessable() -> None:
    jobs = Jobs(kept=2)
    started = [jobs.start("purge", "local", 1, lambda _: {}, lambda _: None) for _ in range(3)]
    assert jobs.get(started[0].id) is None
    assert [jobs.get(j.id) for j in started[1:]] == started[1:]
    assert all(len(j.id) >= 20 for j in started)


# -- the pages, in process over the local stack -----------------------------------------------


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack) as console:
        yield console


def jobs_of(console: Console) -> Jobs:
    """The console's own jobs (its pages' registry)."""
    app = console.client.app
    assert isinstance(app, Starlette)
    route = next(r for r in app.routes if getattr(r, "path", "") == "/jobs/{job_id}")
    assert isinstance(route, Route)
    jobs: Jobs = route.endpoint.__self__.jobs  # type: ignore[attr-defined]
    return jobs


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """``app`` under uvicorn on a free loopback port, in a thread; the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def many_dead_letters(stack: Stack, count: int) -> list[str]:
    return [dead_lettered(stack, f"bulk-{index}") for index in range(count)]


def test_a_job_s_page_lists_its_progress_then_its_outcome_without_script_or_reloading(
    console: Console,
) -> None:
    release = threading.Event()
    job = jobs_of(console).start("purge", "local", 60, held_work(release, 20), lambda _: None)
    threading.Timer(0.5, release.set).start()
    response = console.get(f"/jobs/{job.id}")
    assert response.status_code == 200
    text = response.text
    assert '<span data-field="processed">20</span> of 60 dealt with' in text
    assert '<span data-field="processed">60</span> of 60 dealt with' in text
    assert text.index("20</span> of 60") < text.index('Purged <span data-field="done">1</span>')
    assert "<script" not in text
    assert "http-equiv" not in text
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_job_s_page_is_sent_as_the_job_goes_not_when_it_ends(stack: Stack) -> None:
    # Over a real HTTP server: the progress arrives while the job is still held.
    with console_on(stack) as console, serving(console.client.app) as port:
        release = threading.Event()
        job = jobs_of(console).start("purge", "local", 60, held_work(release, 20), lambda _: None)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/jobs/{job.id}")
        response = connection.getresponse()
        received = ""
        while "20</span> of 60 dealt with" not in received:
            chunk = response.read1(4096)
            assert chunk, received
            received += chunk.decode()
        assert not job.finished
        release.set()
        received += response.read().decode()
        connection.close()
    assert 'Purged <span data-field="done">1</span>' in received
    assert received.rstrip().endswith("</html>")


def test_a_large_purge_answers_at_once_with_its_job_page_and_removes_exactly_the_selection(
    console: Console, stack: Stack
) -> None:
    kept = dead_lettered(stack, "kept")
    selection = many_dead_letters(stack, INLINE_LIMIT + 10)
    with capture_logs() as logs:
        form = {"csrf": console.csrf_token(), "message_id": selection}
        started = console.client.post("/dead-letters/purge", data=form, follow_redirects=False)
        assert started.status_code == 303
        location = started.headers["location"]
        assert location.startswith("/jobs/")
        job = jobs_of(console).get(location.removeprefix("/jobs/"))
        assert job is not None
        wait_until_finished(job, timeout_s=60)
    page = console.get(location)
    assert f'Purged <span data-field="done">{len(selection)}</span>' in page.text
    listed = console.json("/dead-letters")["dead_letters"]
    assert [d["message_id"] for d in listed] == [kept]
    [entry] = [e for e in logs if e["event"] == "console purge"]
    assert (entry["who"], entry["job"], entry["selected"]) == ("local", job.id, len(selection))
    assert sorted(entry["message_ids"]) == sorted(selection)


def test_a_job_has_a_json_twin_and_a_script_gets_202_with_its_location(
    console: Console, stack: Stack
) -> None:
    selection = many_dead_letters(stack, INLINE_LIMIT + 1)
    form = {"csrf": console.csrf_token(), "message_id": selection}
    started = console.client.post("/dead-letters/purge?format=json", data=form)
    assert started.status_code == 202
    location = started.json()["location"]
    assert started.headers["location"] == location
    assert started.json()["total"] == len(selection)
    job = jobs_of(console).get(location.removeprefix("/jobs/"))
    assert job is not None
    wait_until_finished(job, timeout_s=60)
    document = console.json(location)
    assert (document["processed"], document["finished"]) == (len(selection), True)
    assert len(document["result"]["done"]) == len(selection)


def test_an_unknown_job_is_404(console: Console) -> None:
    assert console.get("/jobs/nothing-like-it").status_code == 404
    assert console.json("/jobs/nothing-like-it") == {"found": False}


def test_behind_iap_a_job_logs_its_operator_and_a_viewer_cannot_see_it(
    stack: Stack, iap_keys: IapKeys
) -> None:
    selection = many_dead_letters(stack, INLINE_LIMIT + 1)
    with console_on(
        stack,
        https=True,
        EMAIL_WORKER_CONSOLE_IAP_AUDIENCE=AUDIENCE,
        EMAIL_WORKER_CONSOLE_IAP_CERTS_URL=iap_keys.certs_url,
        EMAIL_WORKER_CONSOLE_VIEWERS=VIEWER,
        EMAIL_WORKER_CONSOLE_OPERATORS=OPERATOR,
    ) as console:
        operator = as_user(iap_keys.assertion(OPERATOR))
        form = {"csrf": console.csrf_token(operator), "message_id": selection}
        with capture_logs() as logs:
            started = console.client.post(
                "/dead-letters/purge", data=form, headers=operator, follow_redirects=False
            )
            assert started.status_code == 303
            location = started.headers["location"]
            job = jobs_of(console).get(location.removeprefix("/jobs/"))
            assert job is not None
            wait_until_finished(job, timeout_s=60)
        viewer = as_user(iap_keys.assertion(VIEWER))
        assert console.get(location, headers=viewer).status_code == 403
        assert console.get(location, headers=operator).status_code == 200
    [entry] = [e for e in logs if e["event"] == "console purge"]
    assert (entry["who"], entry["done"]) == (OPERATOR, len(selection))
