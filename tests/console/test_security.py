"""The console's guards without IAP: security headers on every answer, CSRF on every POST,
JSON twins, and values from requests rendered as text."""

from __future__ import annotations

import html
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from starlette.routing import Route

from tests.console.common import dead_lettered
from tests.support.console import Console, console_on
from tests.support.naughty import NAUGHTY_STRINGS
from tests.support.worker_stack import Stack
from worker.console.security import CONTENT_SECURITY_POLICY

PAGES = [
    "/",
    "/dead-letters",
    "/request?service=billing&id=r1",
    "/recipient",
    "/static/console.css",
]


@pytest.fixture
def console(stack: Stack) -> Iterator[Console]:
    with console_on(stack) as console:
        yield console


def post_routes(console: Console) -> list[str]:
    app = console.client.app
    routes = getattr(app, "routes", [])
    return [r.path for r in routes if isinstance(r, Route) and "POST" in (r.methods or ())]


@pytest.mark.parametrize("path", PAGES)
def test_every_answer_carries_a_strict_content_security_policy(console: Console, path: str) -> None:
    response = console.get(path)
    assert response.status_code in (200, 404)
    policy = response.headers["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in policy
    assert "default-src 'self'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_pages_hold_no_script_and_no_inline_style(console: Console) -> None:
    for path in PAGES[:-1]:
        page = console.get(path).text.lower()
        assert "<script" not in page
        assert " style=" not in page
        assert "<style" not in page


@pytest.mark.parametrize("path", PAGES[:-1])
def test_every_page_has_a_json_twin(console: Console, path: str) -> None:
    separator = "&" if "?" in path else "?"
    response = console.get(f"{path}{separator}format=json")
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json(), dict)


def test_there_are_post_routes_to_guard(console: Console) -> None:
    assert sorted(post_routes(console)) == [
        "/dead-letters/purge",
        "/dead-letters/replay",
        "/recipient",
    ]


def test_every_post_without_the_csrf_token_is_refused_and_changes_nothing(
    console: Console, stack: Stack
) -> None:
    message_id = dead_lettered(stack, "r1")
    console.csrf_token()  # the cookie is set; the form does not carry it
    for path in post_routes(console):
        response = console.client.post(path, data={"message_id": message_id})
        assert response.status_code == 403, path
        assert "csrf" in response.text
    assert [d["message_id"] for d in console.json("/dead-letters")["dead_letters"]] == [message_id]


def test_a_post_with_another_token_than_its_cookie_is_refused(
    console: Console, stack: Stack
) -> None:
    message_id = dead_lettered(stack, "r1")
    console.csrf_token()
    for path in post_routes(console):
        form = {"csrf": "a-token-of-the-attackers", "message_id": message_id}
        assert console.client.post(path, data=form).status_code == 403


def test_a_post_from_another_origin_is_refused_even_with_the_token(
    console: Console, stack: Stack
) -> None:
    message_id = dead_lettered(stack, "r1")
    form = {"csrf": console.csrf_token(), "message_id": message_id}
    response = console.client.post(
        "/dead-letters/purge", data=form, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert len(console.json("/dead-letters")["dead_letters"]) == 1


def test_a_post_that_is_not_a_form_is_refused(console: Console) -> None:
    console.csrf_token()
    response = console.client.post("/dead-letters/purge", json={"message_id": ["1"]})
    assert response.status_code == 415


def test_the_csrf_cookie_is_http_only_and_same_site_strict(console: Console) -> None:
    cookie = console.get("/").headers["set-cookie"]
    assert cookie.startswith("csrf=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


class _Tags(HTMLParser):
    """The names of the elements inside each ``<tbody>``, and the attributes seen there."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self.inside = True
        elif self.inside:
            self.tags.add(tag)
            self.attributes.update(name for name, _ in attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.inside = False


def test_naughty_subjects_names_tags_and_error_messages_are_escaped(
    console: Console, stack: Stack
) -> None:
    for index, naughty in enumerate(NAUGHTY_STRINGS[:25]):
        dead_lettered(
            stack,
            f"n{index}",
            message=naughty,
            recorded=False,
            subject=naughty,
            tags={"kind": naughty[:256]},
            sender=f"{naughty} <billing@example.com>",
        )
    page = console.get("/dead-letters").text
    parsed = _Tags()
    parsed.feed(page)
    assert parsed.tags == {"tr", "td", "a"}
    assert parsed.attributes == {"href"}
    assert html.escape("<script>alert(1)</script>", quote=False) in page
