"""Behind Identity-Aware Proxy: only IAP's verified assertion gets in, and its address's role
decides what it may do. The keys are an ES256 key of ours served on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from tests.console.common import dead_lettered, replay_subscription
from tests.support.console import Console, console_on
from tests.support.iap_keys import AUDIENCE, IapKeys
from tests.support.worker_stack import Stack
from worker.console.iap import IAP_HEADER

VIEWER = "support@example.com"
OPERATOR = "oncall@example.com"


@pytest.fixture
def console(stack: Stack, iap_keys: IapKeys) -> Iterator[Console]:
    with console_on(
        stack,
        https=True,
        EMAIL_WORKER_CONSOLE_IAP_AUDIENCE=AUDIENCE,
        EMAIL_WORKER_CONSOLE_IAP_CERTS_URL=iap_keys.certs_url,
        EMAIL_WORKER_CONSOLE_VIEWERS=f"{VIEWER},domain:viewers.example",
        EMAIL_WORKER_CONSOLE_OPERATORS=OPERATOR,
    ) as console:
        yield console


def as_user(assertion: str | None) -> dict[str, str]:
    return {} if assertion is None else {IAP_HEADER: assertion}


Build = Callable[[IapKeys], str | None]
REFUSED: dict[str, tuple[Build, int]] = {
    "missing": (lambda k: None, 401),
    "garbage": (lambda k: "not-a-jwt", 401),
    "forged": (lambda k: k.assertion(OPERATOR, forged=True), 401),
    "expired": (
        lambda k: k.assertion(OPERATOR, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        401,
    ),
    "wrong-audience": (lambda k: k.assertion(OPERATOR, audience="/projects/1/apps/other"), 401),
    "wrong-issuer": (lambda k: k.assertion(OPERATOR, iss="https://accounts.google.com"), 401),
    "no-role": (lambda k: k.assertion("stranger@example.org"), 403),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_request_without_a_valid_assertion_or_role_is_refused(
    console: Console, iap_keys: IapKeys, case: str
) -> None:
    build, status = REFUSED[case]
    for path in ("/", "/dead-letters", "/request?service=billing&id=r1"):
        response = console.get(path, headers=as_user(build(iap_keys)))
        assert response.status_code == status, (path, response.text)
        assert "Content-Security-Policy" in response.headers


def test_a_viewer_may_look(console: Console, iap_keys: IapKeys) -> None:
    headers = as_user(iap_keys.assertion(VIEWER))
    home = console.get("/?format=json", headers=headers)
    assert home.status_code == 200
    assert home.json()["who"] == VIEWER
    assert home.json()["role"] == "viewer"
    assert console.get("/dead-letters", headers=headers).status_code == 200


def test_a_domain_entry_makes_everyone_of_that_domain_a_viewer(
    console: Console, iap_keys: IapKeys
) -> None:
    headers = as_user(iap_keys.assertion("anyone@viewers.example"))
    assert console.get("/?format=json", headers=headers).json()["role"] == "viewer"


def test_a_viewer_cannot_replay_or_purge_and_nothing_is_published(
    console: Console, iap_keys: IapKeys, stack: Stack
) -> None:
    message_id = dead_lettered(stack, "r1")
    headers = as_user(iap_keys.assertion(VIEWER))
    confirm = console.get(
        f"/dead-letters/confirm?action=replay&message_id={message_id}", headers=headers
    )
    assert confirm.status_code == 403
    for action in ("replay", "purge"):
        assert console.act(action, [message_id], headers).status_code == 403
    assert stack.nothing_more(replay_subscription(stack))
    listed = console.get("/dead-letters?format=json", headers=headers).json()
    assert [d["message_id"] for d in listed["dead_letters"]] == [message_id]


def test_an_operator_may_purge_and_the_log_names_who(
    console: Console, iap_keys: IapKeys, stack: Stack
) -> None:
    message_id = dead_lettered(stack, "r1")
    headers = as_user(iap_keys.assertion(OPERATOR))
    with capture_logs() as logs:
        response = console.act("purge", [message_id], headers)
    assert response.status_code == 200
    [entry] = [e for e in logs if e["event"] == "console purge"]
    assert entry["who"] == OPERATOR
    assert entry["done"] == 1
    assert entry["message_ids"] == [message_id]


def test_behind_iap_the_csrf_cookie_is_secure_and_host_only(
    console: Console, iap_keys: IapKeys
) -> None:
    response = console.get("/", headers=as_user(iap_keys.assertion(VIEWER)))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-csrf=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


def test_iap_keys_are_fetched_once_for_many_requests(console: Console, iap_keys: IapKeys) -> None:
    before = iap_keys.fetches
    for _ in range(5):
        console.get("/", headers=as_user(iap_keys.assertion(VIEWER)))
    assert iap_keys.fetches - before <= 1


def test_the_assertion_never_reaches_the_log(console: Console, iap_keys: IapKeys) -> None:
    assertion = iap_keys.assertion(OPERATOR, forged=True)
    with capture_logs() as logs:
        console.get("/", headers=as_user(assertion))
    assert assertion not in json.dumps(logs, default=str)
    assert logs, "the refusal is logged"
