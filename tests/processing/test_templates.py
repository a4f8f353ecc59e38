"""Template requests through the pipeline: rendered, refused with their codes, pinned on replay."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tests.processing.test_pipeline import CONFIG, delivery_of, deps_for, sent
from tests.processing.test_pipeline_ledger import replay_of
from worker.formats.result import EmailResult
from worker.ledger import LedgerKey, SqliteLedger
from worker.processing.outputs import result_for
from worker.processing.pipeline import Deps, Outcome, Status, process
from worker.sending import errors
from worker.sending.template_store import TemplateStore
from worker.sending.testing import RecordingSession

INVOICE = {
    "en.subject": b"Invoice {{ number }}",
    "en.text": b"Dear {{ name }}, you owe {{ total }}.",
    "en.html": b"<p>Dear {{ name }}, you owe <b>{{ total }}</b>.</p>",
    "de.subject": b"Rechnung {{ number }}",
    "de.text": b"Hallo {{ name }}",
}
DATA = {"number": 7, "name": "Tom <&> Jerry", "total": "10 EUR"}


@pytest.fixture
def templates_url(tmp_path: Path) -> str:
    return f"file://{tmp_path}/templates/{{environment}}/{{service_id}}"


def publish(url: str, files: dict[str, bytes], service: str = "billing", **manifest: Any) -> int:
    store = TemplateStore.for_service(service, environment="production", url=url)
    document = json.dumps({"default_language": "en", **manifest}).encode()
    return store.publish("invoice", document, files)


def template_request(**template: Any) -> dict[str, Any]:
    return {
        "request_id": "invoice-7",
        "subject": None,
        "text": None,
        "template": {"name": "invoice", "data": DATA, **template},
    }


def deps(session: RecordingSession, url: str, **fields: Any) -> Deps:
    return deps_for(session, {"EMAIL_WORKER_TEMPLATES_URL": url}, sleep=lambda _: None, **fields)


def run(url: str, **template: Any) -> tuple[Outcome, RecordingSession]:
    session = RecordingSession(sent, service_config=CONFIG)
    return process(delivery_of(template_request(**template)), deps(session, url)), session


def parts(message: EmailMessage | None) -> dict[str, str]:
    assert message is not None
    wire = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    found = {"subject": str(parsed["Subject"])}
    for part in parsed.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            found[part.get_content_subtype()] = part.get_content().replace("\r\n", "\n")
    return found


def test_a_template_request_is_sent_with_the_rendered_subject_text_and_html(
    templates_url: str,
) -> None:
    publish(templates_url, INVOICE)
    outcome, session = run(templates_url)
    assert outcome.status is Status.SENT
    assert outcome.template == ("invoice", 1, "en")
    assert parts(session.last_message) == {
        "subject": "Invoice 7",
        "plain": "Dear Tom <&> Jerry, you owe 10 EUR.\n",
        "html": "<p>Dear Tom &lt;&amp;&gt; Jerry, you owe <b>10 EUR</b>.</p>\n",
    }


def test_a_template_is_read_from_gcs_like_service_configurations(gcs_env: Any) -> None:
    url = f"gs://{gcs_env.create_bucket()}/{{environment}}/templates/{{service_id}}"
    publish(url, INVOICE)
    outcome, session = run(url, language="de")
    assert (outcome.status, outcome.template) == (Status.SENT, ("invoice", 1, "de"))
    assert parts(session.last_message)["subject"] == "Rechnung 7"


def test_the_result_carries_the_templates_name_version_and_language(templates_url: str) -> None:
    publish(templates_url, INVOICE)
    publish(templates_url, INVOICE)
    outcome, _ = run(templates_url, version=1, language="de")
    result = result_for(outcome, delivery_of(), datetime.now(UTC))
    document = json.loads(result.to_json_bytes())
    assert document["template"] == {"name": "invoice", "version": 1, "language": "de"}
    assert EmailResult.from_json_bytes(result.to_json_bytes()).template == ("invoice", 1, "de")


def test_a_plain_requests_result_has_no_template_field() -> None:
    session = RecordingSession(sent, service_config=CONFIG)
    outcome = process(delivery_of(), deps_for(session, {}, sleep=lambda _: None))
    result = result_for(outcome, delivery_of(), datetime.now(UTC))
    assert "template" not in json.loads(result.to_json_bytes())


def test_an_unknown_template_is_template_not_found(templates_url: str) -> None:
    outcome, session = run(templates_url)
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "template_not_found")
    assert session.calls == 0


def test_another_services_template_is_template_not_found(templates_url: str) -> None:
    publish(templates_url, INVOICE, service="reports")
    outcome, session = run(templates_url)
    assert outcome.error_code == "template_not_found"
    assert session.calls == 0


def test_a_language_the_template_lacks_is_template_not_found(templates_url: str) -> None:
    publish(templates_url, INVOICE)
    outcome, _ = run(templates_url, language="fr")
    assert outcome.error_code == "template_not_found"
    assert outcome.error_message is not None
    assert "'fr'" in outcome.error_message


def test_missing_data_is_template_data_invalid_naming_every_missing_name(
    templates_url: str,
) -> None:
    publish(templates_url, INVOICE)
    outcome, session = run(templates_url, data={"number": 1})
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "template_data_invalid")
    assert outcome.error_message is not None
    assert "name" in outcome.error_message
    assert "total" in outcome.error_message
    assert session.calls == 0


def test_data_failing_the_templates_schema_is_template_data_invalid(templates_url: str) -> None:
    schema = {"type": "object", "properties": {"number": {"type": "integer"}}}
    publish(templates_url, INVOICE, schema=schema)
    outcome, _ = run(templates_url, data={**DATA, "number": "seven"})
    assert outcome.error_code == "template_data_invalid"
    assert outcome.error_message is not None
    assert "number" in outcome.error_message


def test_a_loop_bomb_is_template_render_failed(templates_url: str) -> None:
    bomb = b"{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    publish(templates_url, {**INVOICE, "en.text": bomb})
    outcome, session = run(templates_url)
    assert (outcome.status, outcome.error_code) == (Status.REJECTED, "template_render_failed")
    assert session.calls == 0


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db", claim_lease_s=90) as opened:
        yield opened


def test_a_replay_after_a_new_version_was_published_sends_the_old_version(
    templates_url: str, ledger: SqliteLedger
) -> None:
    def unverified_then_sent(n: int) -> list[str]:
        if n == 1:
            raise errors.IdentityNotVerifiedError("not verified")
        return ["ses-2"]

    publish(templates_url, INVOICE)
    session = RecordingSession(unverified_then_sent, service_config=CONFIG)
    delivery = delivery_of(template_request())
    first = process(delivery, deps(session, templates_url, ledger=ledger))
    publish(templates_url, {**INVOICE, "en.subject": b"Version two"})
    replayed = process(replay_of(delivery), deps(session, templates_url, ledger=ledger))
    assert first.error_code == "identity_not_verified"
    assert (replayed.status, replayed.template) == (Status.SENT, ("invoice", 1, "en"))
    assert parts(session.last_message)["subject"] == "Invoice 7"
    record = ledger.get(LedgerKey("billing", "invoice-7"))
    assert record is not None
    assert record.result is not None
    assert record.result.template == ("invoice", 1, "en")


def test_a_redelivery_of_a_sent_template_request_replays_its_template(
    templates_url: str, ledger: SqliteLedger
) -> None:
    publish(templates_url, INVOICE)
    session = RecordingSession(sent, service_config=CONFIG)
    delivery = delivery_of(template_request())
    process(delivery, deps(session, templates_url, ledger=ledger))
    again = process(delivery, deps(session, templates_url, ledger=ledger))
    assert (session.calls, again.template) == (1, ("invoice", 1, "en"))


def test_naughty_strings_as_data_never_produce_markup_in_the_sent_html_part(
    templates_url: str,
) -> None:
    from tests.support.naughty import NAUGHTY_STRINGS

    publish(templates_url, {**INVOICE, "en.html": b"<p>{{ name }}</p>"})
    session = RecordingSession(sent, service_config=CONFIG)
    library_deps = deps(session, templates_url)
    for index, value in enumerate(NAUGHTY_STRINGS):
        request = template_request(data={**DATA, "name": value})
        outcome = process(delivery_of({**request, "request_id": f"n{index}"}), library_deps)
        assert outcome.status is Status.SENT, outcome.error_message
        html = parts(session.last_message)["html"].removesuffix("\n")
        inside = html.removeprefix("<p>").removesuffix("</p>")
        assert not set("<>\"'") & set(inside), value
        assert unescape(inside) == value.replace("\r\n", "\n")


def test_the_documented_template_request_is_sent_rendered_from_the_documented_template(
    templates_url: str,
) -> None:
    from tests.formats.test_request import _docs_json_examples
    from tests.ops.test_cli_templates import documented_example

    files, _ = documented_example()
    template_files = {
        path.removeprefix("invoice/"): content.encode()
        for path, content in files.items()
        if path.startswith("invoice/") and path.split(".")[-1] in ("subject", "text", "html")
    }
    manifest = json.loads(files["invoice/template.json"])
    for _ in range(3):  # the documented request names version 3
        publish(templates_url, template_files, **manifest)
    [documented] = [example for example in _docs_json_examples() if "template" in example]
    session = RecordingSession(sent, service_config=CONFIG)
    request = {**documented, "service_id": "billing", "subject": None, "text": None}
    outcome = process(delivery_of(request), deps(session, templates_url))
    assert (outcome.status, outcome.template) == (Status.SENT, ("invoice", 3, "de")), outcome
    assert parts(session.last_message) == {
        "subject": "Rechnung für Ada",
        "plain": "Hallo Ada, Sie schulden 12.50 EUR.\n",
    }
