"""A template request naming no version renders, on every later delivery, the version its
first delivery resolved: pinned on the claim by each ledger backend, whatever was published
in between (a redelivery after a transient failure, a takeover after a crash, a replay)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger.common import LEASE_S, START
from tests.processing.test_pipeline import CONFIG, delivery_of, deps_for
from tests.processing.test_pipeline_ledger import replay_of
from tests.processing.test_templates import INVOICE, deps, parts, publish, template_request
from tests.support.clock import ManualClock
from worker.ledger import FirestoreLedger, Ledger, LedgerKey, MemoryLedger, SqliteLedger
from worker.processing.pipeline import LedgerEvent, Status, process
from worker.sending import errors
from worker.sending.testing import RecordingSession

VERSION_TWO = {**INVOICE, "en.subject": b"Version two {{ number }}"}
KEY = LedgerKey("billing", "invoice-7")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.integration)]
)
def ledger(request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path) -> Iterator[Ledger]:
    """An empty ledger of each backend, on the test's clock."""
    built: Ledger
    if request.param == "memory":
        built = MemoryLedger(claim_lease_s=LEASE_S, clock=clock)
    elif request.param == "sqlite":
        built = SqliteLedger(tmp_path / "ledger.db", claim_lease_s=LEASE_S, clock=clock)
    else:
        request.getfixturevalue("firestore_env")
        built = FirestoreLedger(claim_lease_s=LEASE_S, clock=clock)
    yield built
    built.close()


@pytest.fixture
def templates_url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/templates/{{environment}}/{{service_id}}"


class Crash(BaseException):
    """The worker process dying in the middle of its SES call: nothing is released."""


def test_a_redelivery_after_a_transient_failure_sends_the_version_first_resolved(
    templates_url: str, ledger: Ledger
) -> None:
    def throttled_while_v2_is_published_then_sent(n: int) -> list[str]:
        if n == 1:
            publish(templates_url, VERSION_TWO)
            raise errors.ThrottledError("slow down")
        return ["ses-2"]

    publish(templates_url, INVOICE)
    session = RecordingSession(throttled_while_v2_is_published_then_sent, service_config=CONFIG)
    delivery = delivery_of(template_request())
    env = {"EMAIL_WORKER_TEMPLATES_URL": templates_url, "EMAIL_WORKER_SEND_MAX_ATTEMPTS": "1"}
    first = process(delivery, deps_for(session, env, ledger=ledger))
    # Each delivery with its own Deps: as another worker (or this one restarted) would.
    again = process(delivery, deps_for(session, env, ledger=ledger))
    assert first.status is Status.RETRY
    assert (again.status, again.template) == (Status.SENT, ("invoice", 1, "en"))
    assert parts(session.last_message)["subject"] == "Invoice 7"


def test_a_takeover_after_a_crash_sends_the_version_first_resolved(
    templates_url: str, ledger: Ledger, clock: ManualClock
) -> None:
    def crashes_then_sent(n: int) -> list[str]:
        if n == 1:
            raise Crash
        return ["ses-2"]

    publish(templates_url, INVOICE)
    session = RecordingSession(crashes_then_sent, service_config=CONFIG)
    delivery = delivery_of(template_request())
    with pytest.raises(Crash):
        process(delivery, deps(session, templates_url, ledger=ledger))
    publish(templates_url, VERSION_TWO)
    clock.now += LEASE_S + 1
    taken_over = process(delivery, deps(session, templates_url, ledger=ledger))
    assert (taken_over.status, taken_over.ledger) == (Status.SENT, LedgerEvent.TAKEOVER)
    assert taken_over.template == ("invoice", 1, "en")
    assert parts(session.last_message)["subject"] == "Invoice 7"


def test_an_operators_replay_sends_the_version_first_resolved(
    templates_url: str, ledger: Ledger
) -> None:
    def unverified_then_sent(n: int) -> list[str]:
        if n == 1:
            raise errors.IdentityNotVerifiedError("not verified")
        return ["ses-2"]

    publish(templates_url, INVOICE)
    session = RecordingSession(unverified_then_sent, service_config=CONFIG)
    delivery = delivery_of(template_request())
    process(delivery, deps(session, templates_url, ledger=ledger))
    publish(templates_url, VERSION_TWO)
    replayed = process(replay_of(delivery), deps(session, templates_url, ledger=ledger))
    assert (replayed.status, replayed.template) == (Status.SENT, ("invoice", 1, "en"))
    assert parts(session.last_message)["subject"] == "Invoice 7"


def test_the_first_deliveries_version_is_kept_in_the_ledger_record(
    templates_url: str, ledger: Ledger
) -> None:
    publish(templates_url, INVOICE)
    publish(templates_url, INVOICE)
    session = RecordingSession(service_config=CONFIG)
    process(delivery_of(template_request()), deps(session, templates_url, ledger=ledger))
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version == 2


def test_a_request_naming_its_version_pins_nothing(templates_url: str, ledger: Ledger) -> None:
    publish(templates_url, INVOICE)
    session = RecordingSession(service_config=CONFIG)
    process(delivery_of(template_request(version=1)), deps(session, templates_url, ledger=ledger))
    record = ledger.get(KEY)
    assert record is not None
    assert record.template_version is None
