"""The session library against real servers: moto (STS, SES v2), the metadata stand-in, GCS.

No AWS keys exist in the test process (see conftest): every send below authenticates with a
Google ID token from the metadata stand-in, exchanged with moto's STS.
"""

from __future__ import annotations

import email
import email.policy
import inspect
import json
import os
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import google.auth.jwt
import pytest

from tests.support import fault_proxy as faults
from tests.support.email_requests import request_from
from worker.formats.message import build_message
from worker.formats.tags import WorkerTags, read_worker_tags
from worker.sending import errors
from worker.sending import ses_session as session_module
from worker.sending.identity import TOKEN_AUDIENCE
from worker.sending.ses_session import (
    DEFAULT_AWS_REGION,
    LATER_BATCH_ATTEMPTS,
    BaseSession,
    Session,
)

ROLE = "arn:aws:iam::123456789012:role/email-sender"


def make_message(
    *, to: str = "alice@example.org", sender: str | None = "noreply@example.com", **extra: str
) -> EmailMessage:
    message = EmailMessage()
    if sender:
        message["From"] = sender
    message["To"] = to
    message["Subject"] = extra.pop("subject", "Hello from the tests")
    for name, value in extra.items():
        message[name.capitalize()] = value
    message.set_content("The body of the message.")
    return message


def parsed(raw: str | None) -> EmailMessage:
    assert raw is not None
    return email.message_from_string(raw, policy=email.policy.default)


def test_the_public_api_matches_the_reference() -> None:
    assert issubclass(Session, BaseSession)
    assert inspect.isabstract(BaseSession)
    assert str(inspect.signature(Session)) == (
        "(service_role_arn: 'str', *, impersonate_service_account: 'str | None' = None, "
        "role_session_name: 'str | None' = None, aws_region: 'str | None' = None, "
        "default_from_address: 'str | None' = None, tenant_name: 'str | None' = None) -> 'None'"
    )
    assert isinstance(inspect.getattr_static(Session, "for_service"), staticmethod)
    assert list(inspect.signature(Session.for_service).parameters) == [
        "service_id",
        "impersonate_service_account",
        "role_session_name",
        "environment",
        "config_url",
    ]
    assert list(inspect.signature(Session.send_email).parameters) == ["self", "message"]


def test_no_static_aws_keys_are_available_to_the_session() -> None:
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"} & set(os.environ)


def test_a_message_arrives_with_its_from_to_and_subject(aws_env: Any, moto: Any) -> None:
    ids = Session(ROLE).send_email(make_message())
    sent = moto.sent_messages()
    assert len(ids) == 1
    assert len(sent) == 1
    assert sent[0].source == "noreply@example.com"
    assert sent[0].destinations == ["alice@example.org"]
    headers = parsed(sent[0].raw_data)
    assert headers["From"] == "noreply@example.com"
    assert headers["To"] == "alice@example.org"
    assert headers["Subject"] == "Hello from the tests"


def test_the_session_sends_from_its_region(aws_env: Any, moto: Any) -> None:
    Session(ROLE).send_email(make_message())
    assert moto.sent_messages()[0].region == DEFAULT_AWS_REGION


def test_120_recipients_give_three_ids_and_reach_everyone_once(aws_env: Any, moto: Any) -> None:
    to = ", ".join(f"user{n}@example.org" for n in range(100))
    cc = ", ".join(f"user{n}@example.org" for n in range(90, 120))  # 10 repeat the To list
    ids = Session(ROLE).send_email(make_message(to=to, cc=cc))
    sent = moto.sent_messages()
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert [len(m.destinations) for m in sent] == [50, 50, 20]
    reached = [address for m in sent for address in m.destinations]
    assert sorted(reached) == sorted(f"user{n}@example.org" for n in range(120))


def sent_tenants(proxy: Any) -> list[str | None]:
    """The TenantName of every SendEmail the SES server was sent, in order."""
    bodies = [json.loads(r.request.body) for r in proxy.requests if r.kind == "ses_send"]
    return [body.get("TenantName") for body in bodies]


def test_a_tenant_sessions_every_call_names_its_tenant(fault_proxy: Any, moto: Any) -> None:
    to = ", ".join(f"user{n}@example.org" for n in range(120))
    session = Session(ROLE, tenant_name="billing")
    session.send_email(make_message(to=to))
    session.send_email(make_message())
    assert sent_tenants(fault_proxy) == ["billing"] * 4
    assert len(moto.sent_messages()) == 4


def test_a_session_without_a_tenant_names_none(fault_proxy: Any, moto: Any) -> None:
    Session(ROLE).send_email(make_message())
    assert sent_tenants(fault_proxy) == [None]


def test_a_paused_tenant_is_a_tenant_paused_error_and_nothing_is_sent(
    fault_proxy: Any, moto: Any
) -> None:
    fault_proxy.add_rule(faults.ses_error("SendingPausedException", 400, "Sending paused."))
    with pytest.raises(errors.TenantPausedError) as caught:
        Session(ROLE, tenant_name="billing").send_email(make_message())
    assert caught.value.code == "sending_paused"
    assert moto.sent_messages() == []


def test_bcc_recipients_are_reached_but_not_shown(aws_env: Any, moto: Any) -> None:
    Session(ROLE).send_email(make_message(bcc="secret@example.org"))
    sent = moto.sent_messages()[0]
    assert "secret@example.org" in sent.destinations
    assert sent.raw_data is not None
    assert "secret@example.org" not in sent.raw_data


def test_the_default_from_address_is_used_when_the_message_has_none(
    aws_env: Any, moto: Any
) -> None:
    session = Session(ROLE, default_from_address="fallback@example.com")
    session.send_email(make_message(sender=None))
    sent = moto.sent_messages()[0]
    assert sent.source == "fallback@example.com"
    assert parsed(sent.raw_data)["From"] == "fallback@example.com"


def test_an_unverified_sender_is_a_permanent_identity_error(aws_env: Any, moto: Any) -> None:
    with pytest.raises(errors.IdentityNotVerifiedError) as caught:
        Session(ROLE).send_email(make_message(sender="someone@unverified.example"))
    assert not caught.value.retryable
    assert moto.sent_messages() == []


def test_sts_is_given_a_google_token_for_the_documented_audience(
    fault_proxy: Any, metadata_server: Any
) -> None:
    Session(ROLE, role_session_name="invoices").send_email(make_message())
    [sts_call] = [r.request for r in fault_proxy.requests if r.kind == "sts_web_identity"]
    form = sts_call.form
    claims = google.auth.jwt.decode(form["WebIdentityToken"], verify=False)
    assert claims["aud"] == TOKEN_AUDIENCE
    assert claims["email"] == metadata_server.email
    assert form["RoleArn"] == ROLE
    assert form["RoleSessionName"] == "invoices"


def test_credentials_are_reused_while_they_are_fresh(fault_proxy: Any) -> None:
    session = Session(ROLE)
    session.send_email(make_message())
    session.send_email(make_message())
    assert fault_proxy.count("sts_web_identity") == 1
    assert fault_proxy.count("ses_send") == 2


def test_short_lived_credentials_are_refreshed_before_the_next_send(fault_proxy: Any) -> None:
    # STS says the credentials expire in five minutes: inside botocore's refresh window.
    fault_proxy.add_rewriter(faults.sts_expiration_in(300))
    session = Session(ROLE)
    session.send_email(make_message())
    session.send_email(make_message())
    assert fault_proxy.count("sts_web_identity") == 2
    assert fault_proxy.count("ses_send") == 2


def test_concurrent_sends_share_one_credential_exchange(fault_proxy: Any, moto: Any) -> None:
    session = Session(ROLE)
    threads = [
        threading.Thread(target=session.send_email, args=(make_message(),)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fault_proxy.count("sts_web_identity") == 1
    assert len(moto.sent_messages()) == 8


def test_persistent_ses_throttling_is_a_transient_error(fault_proxy: Any, moto: Any) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("TooManyRequestsException", 429)))
    with pytest.raises(errors.ThrottledError) as caught:
        Session(ROLE).send_email(make_message())
    assert caught.value.retryable
    assert caught.value.provider_code == "TooManyRequestsException"
    assert moto.sent_messages() == []


def test_a_single_throttle_is_absorbed_by_botocores_standard_retries(
    fault_proxy: Any, moto: Any
) -> None:
    fault_proxy.add_rule(faults.fail_first(1, faults.ses_error("TooManyRequestsException", 429)))
    assert len(Session(ROLE).send_email(make_message())) == 1
    assert fault_proxy.count("ses_send") == 2


def test_an_sts_refusal_of_the_token_is_access_denied(fault_proxy: Any) -> None:
    fault_proxy.add_rule(
        faults.fail_always(
            faults.sts_error("InvalidIdentityToken", 400, "Incorrect token audience")
        )
    )
    with pytest.raises(errors.AccessDeniedError) as caught:
        Session(ROLE).send_email(make_message())
    assert not caught.value.retryable
    assert fault_proxy.count("ses_send") == 0


def test_sts_unable_to_reach_the_identity_provider_is_transient(fault_proxy: Any) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.sts_error("IDPCommunicationError", 400)))
    with pytest.raises(errors.TransientError):
        Session(ROLE).send_email(make_message())


def test_a_dropped_connection_is_transient(fault_proxy: Any) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.on_ses_send(faults.connection_reset())))
    with pytest.raises(errors.TransientError):
        Session(ROLE).send_email(make_message())


def test_a_send_whose_answer_is_lost_is_not_repeated_and_may_have_been_sent(
    fault_proxy: Any, moto: Any
) -> None:
    fault_proxy.add_rewriter(faults.lose_ses_answers(1))
    with pytest.raises(errors.MaybeSentError) as caught:
        Session(ROLE).send_email(make_message())
    assert caught.value.retryable
    assert caught.value.code == "outcome_unknown"
    # botocore would have called again after the dropped connection: twice at SES.
    assert fault_proxy.count("ses_send") == 1
    assert len(moto.sent_messages()) == 1


def test_a_later_batch_whose_answer_is_lost_is_not_sent_again(fault_proxy: Any, moto: Any) -> None:
    lost = faults.lose_ses_answers(1)
    sends = {"n": 0}

    def second_answer_lost(
        request: faults.ProxiedRequest, response: faults.UpstreamResponse
    ) -> faults.UpstreamResponse:
        if request.is_ses_send:
            sends["n"] += 1
            if sends["n"] == 2:
                return lost(request, response)
        return response

    fault_proxy.add_rewriter(second_answer_lost)
    to = ", ".join(f"reader{n}@example.org" for n in range(120))
    with pytest.raises(errors.MaybeSentError) as caught:
        Session(ROLE).send_email(make_message(to=to))
    assert len(caught.value.sent_message_ids) == 1
    assert fault_proxy.count("ses_send") == 2  # the lost one was neither retried nor repeated


def test_a_failure_after_the_first_batch_reports_what_was_sent(fault_proxy: Any, moto: Any) -> None:
    accepted = {"n": 0}

    def second_batch_rejected(request: faults.ProxiedRequest) -> faults.FakeResponse | None:
        if not request.is_ses_send:
            return None
        accepted["n"] += 1
        if accepted["n"] == 1:
            return None
        return faults.FakeResponse(
            status=400,
            headers={"x-amzn-ErrorType": "MessageRejected", "content-type": "application/json"},
            body=b'{"message": "Rejected"}',
        )

    fault_proxy.add_rule(second_batch_rejected)
    to = ", ".join(f"user{n}@example.org" for n in range(60))
    with pytest.raises(errors.MessageRejectedError) as caught:
        Session(ROLE).send_email(make_message(to=to))
    assert len(caught.value.sent_message_ids) == 1
    assert len(moto.sent_messages()) == 1


def session_recording_waits() -> tuple[Session, list[float]]:
    """A session whose waits between attempts at a batch are recorded, not slept."""
    session = Session(ROLE)
    sleeps: list[float] = []
    session._sleep = sleeps.append
    return session, sleeps


def addresses(count: int) -> list[str]:
    return [f"user{n}@example.org" for n in range(count)]


def throttled_after_the_first_batch(session: Session, fault_proxy: Any) -> errors.ThrottledError:
    """Send to 60 recipients (two batches) while every SES call after the first is throttled."""
    fault_proxy.add_rule(
        faults.fail_after(1, 1000, faults.ses_error("TooManyRequestsException", 429))
    )
    with pytest.raises(errors.ThrottledError) as caught:
        session.send_email(make_message(to=", ".join(addresses(60))))
    return caught.value


def test_a_throttled_batch_after_the_first_is_retried_so_every_recipient_is_reached_once(
    fault_proxy: Any, moto: Any
) -> None:
    # The second batch's first call and botocore's three quick retries of it are throttled.
    fault_proxy.add_rule(faults.fail_after(1, 4, faults.ses_error("TooManyRequestsException", 429)))
    session, sleeps = session_recording_waits()
    assert len(session.send_email(make_message(to=", ".join(addresses(120))))) == 3
    reached = [address for sent in moto.sent_messages() for address in sent.destinations]
    assert sorted(reached) == sorted(addresses(120))
    assert len(sleeps) == 1


def test_a_later_batch_that_stays_throttled_fails_transiently_with_what_was_sent(
    fault_proxy: Any, moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's own backoff takes seconds per attempt: count attempts, not time.
    monkeypatch.setattr(session_module, "LATER_BATCH_DEADLINE_S", 3600.0)
    session, sleeps = session_recording_waits()
    error = throttled_after_the_first_batch(session, fault_proxy)
    assert len(error.sent_message_ids) == 1
    assert len(sleeps) == LATER_BATCH_ATTEMPTS - 1
    assert len(moto.sent_messages()) == 1


def test_no_attempt_at_a_later_batch_starts_after_its_deadline(
    fault_proxy: Any, moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "LATER_BATCH_DEADLINE_S", 0.0)
    session, sleeps = session_recording_waits()
    error = throttled_after_the_first_batch(session, fault_proxy)
    assert len(error.sent_message_ids) == 1
    assert sleeps == []  # the deadline had passed when the first attempt failed
    assert fault_proxy.count("ses_send") == 1 + 4  # the first batch, then one attempt


def test_the_first_batch_is_not_retried_by_the_session(fault_proxy: Any, moto: Any) -> None:
    fault_proxy.add_rule(faults.fail_always(faults.ses_error("TooManyRequestsException", 429)))
    session, sleeps = session_recording_waits()
    with pytest.raises(errors.ThrottledError):
        session.send_email(make_message())
    assert sleeps == []
    assert fault_proxy.count("ses_send") == 4  # botocore's call and its 3 retries, no more


def test_an_invalid_role_session_name_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="role_session_name"):
        Session(ROLE, role_session_name="has spaces")


def test_a_role_that_is_not_an_arn_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="ARN"):
        Session("email-sender")


def test_the_repr_names_the_role_and_no_secrets() -> None:
    text = repr(Session(ROLE))
    assert ROLE in text


# -- for_service ---------------------------------------------------------------------


def write_config(directory: Path, service_id: str, **document: Any) -> None:
    path = directory / "production" / f"{service_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"service_id": service_id, **document}))


@pytest.fixture
def file_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(
        "EMAIL_WORKER_SERVICE_CONFIG_URL", f"file://{tmp_path}/{{environment}}/{{service_id}}.json"
    )
    return tmp_path


def test_for_service_sends_with_a_file_configuration(
    aws_env: Any, moto: Any, file_configs: Path
) -> None:
    write_config(
        file_configs,
        "my-service",
        service_role_arn=ROLE,
        default_from_address="my-service@example.com",
    )
    session = Session.for_service("my-service")
    session.send_email(make_message(sender=None))
    sent = moto.sent_messages()
    assert [m.source for m in sent] == ["my-service@example.com"]


def test_for_service_sends_through_the_configured_ses_tenant(
    fault_proxy: Any, moto: Any, file_configs: Path
) -> None:
    write_config(file_configs, "shop", service_role_arn=ROLE, ses_tenant="shop-tenant")
    Session.for_service("shop").send_email(make_message())
    assert sent_tenants(fault_proxy) == ["shop-tenant"]


def test_for_service_derives_a_valid_role_session_name(
    fault_proxy: Any, file_configs: Path
) -> None:
    write_config(file_configs, "my.service", service_role_arn=ROLE)
    Session.for_service("my.service").send_email(make_message())
    [sts_call] = [r.request for r in fault_proxy.requests if r.kind == "sts_web_identity"]
    assert sts_call.form["RoleSessionName"] == "email-worker-my.service"


def test_for_service_takes_the_region_from_the_configuration(
    aws_env: Any, moto: Any, file_configs: Path
) -> None:
    moto.verify_email_identity("example.com", region="us-east-1")
    write_config(file_configs, "billing", service_role_arn=ROLE, aws_region="us-east-1")
    Session.for_service("billing").send_email(make_message())
    assert moto.sent_messages()[0].region == "us-east-1"


def test_for_service_uses_the_environment_argument(file_configs: Path) -> None:
    path = file_configs / "staging" / "billing.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"service_role_arn": ROLE, "default_from_address": "s@example.com"}))
    session = Session.for_service("billing", environment="staging")
    assert session.default_from_address == "s@example.com"


def test_for_service_reads_the_configuration_url_given_rather_than_the_environment_s(
    file_configs: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    path = elsewhere / "production" / "billing.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"service_role_arn": ROLE, "default_from_address": "e@example.com"}))
    session = Session.for_service(
        "billing", config_url=f"file://{elsewhere}/{{environment}}/{{service_id}}.json"
    )
    assert session.default_from_address == "e@example.com"


def test_for_service_without_a_configuration_names_service_and_location(
    file_configs: Path,
) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Session.for_service("ghost")
    assert "'ghost'" in caught.value.message
    assert str(file_configs) in caught.value.message


def test_for_service_reads_a_gs_configuration(
    aws_env: Any, moto: Any, gcs: Any, gcs_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcs.create_bucket("email-config")
    gcs.put_object(
        "email-config",
        "production/reports.json",
        json.dumps({"service_role_arn": ROLE, "default_from_address": "r@example.com"}).encode(),
    )
    monkeypatch.setenv(
        "EMAIL_WORKER_SERVICE_CONFIG_URL", "gs://email-config/{environment}/{service_id}.json"
    )
    Session.for_service("reports").send_email(make_message(sender=None))
    assert moto.sent_messages()[0].source == "r@example.com"


def test_for_service_with_a_missing_gs_object_is_a_configuration_error(
    gcs: Any, gcs_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcs.create_bucket("email-config-empty")
    monkeypatch.setenv(
        "EMAIL_WORKER_SERVICE_CONFIG_URL", "gs://email-config-empty/{environment}/{service_id}.json"
    )
    with pytest.raises(errors.ConfigurationError, match="does not exist"):
        Session.for_service("reports")


# -- impersonation ---------------------------------------------------------------------

IMPERSONATED = "email-sender@other-project.iam.gserviceaccount.com"


def test_an_impersonated_identity_is_presented_to_sts_with_its_email(
    fault_proxy: Any, metadata_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata_server.patch_iam_endpoints(monkeypatch)
    metadata_server.reset()
    Session(ROLE, impersonate_service_account=IMPERSONATED).send_email(make_message())
    [sts_call] = [r.request for r in fault_proxy.requests if r.kind == "sts_web_identity"]
    claims = google.auth.jwt.decode(sts_call.form["WebIdentityToken"], verify=False)
    assert claims["email"] == IMPERSONATED
    assert claims["aud"] == TOKEN_AUDIENCE
    assert metadata_server.count(f"{IMPERSONATED}:generateIdToken") == 1


def test_for_service_reads_a_gs_configuration_as_the_impersonated_identity(
    aws_env: Any,
    moto: Any,
    gcs: Any,
    gcs_env: Any,
    metadata_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metadata_server.patch_iam_endpoints(monkeypatch)
    metadata_server.reset()
    gcs.put_object(
        "email-config-imp",
        "production/alerts.json",
        json.dumps({"service_role_arn": ROLE}).encode(),
    )
    monkeypatch.setenv(
        "EMAIL_WORKER_SERVICE_CONFIG_URL", "gs://email-config-imp/{environment}/{service_id}.json"
    )
    session = Session.for_service("alerts", impersonate_service_account=IMPERSONATED)
    session.send_email(make_message())
    assert session.impersonate_service_account == IMPERSONATED
    # The configuration was read with the impersonated account's access token.
    assert metadata_server.count(f"{IMPERSONATED}:generateAccessToken") >= 1
    assert metadata_server.count(f"{IMPERSONATED}:generateIdToken") == 1
    assert len(moto.sent_messages()) == 1


def test_worker_session_is_the_documented_entry_point_to_the_same_objects() -> None:
    # Services import worker.session (the session API reference); the code is in
    # worker.sending.ses_session.
    import worker.session

    assert worker.session.__all__ == session_module.__all__
    for name in worker.session.__all__:
        assert getattr(worker.session, name) is getattr(session_module, name)


# --------------------------------------------------------------------------- SES message tags

TAGS_HEADER = "X-SES-MESSAGE-TAGS"


def tagged_message(to: str, tags: str) -> EmailMessage:
    message = make_message(to=to)
    message[TAGS_HEADER] = tags
    return message


def test_a_message_sent_in_one_call_is_tagged_by_its_header(aws_env: Any, moto: Any) -> None:
    Session(ROLE).send_email(tagged_message("alice@example.org", "kind=invoice, tier=gold"))
    assert moto.sent_messages()[0].tags == {"kind": "invoice", "tier": "gold"}


def test_each_batch_of_a_large_message_is_tagged_with_its_position_and_the_message_tags(
    aws_env: Any, moto: Any
) -> None:
    ids = Session(ROLE).send_email(tagged_message(", ".join(addresses(120)), "kind=invoice"))
    sent = moto.sent_messages()
    assert [m.message_id for m in sent] == ids
    assert [m.tags for m in sent] == [
        {"kind": "invoice", "email_worker_batch": str(index)} for index in range(3)
    ]


def test_a_batch_tag_in_the_message_itself_gives_way_to_each_batch_s_own(
    aws_env: Any, moto: Any
) -> None:
    message = tagged_message(", ".join(addresses(60)), "email_worker_batch=7, kind=invoice")
    Session(ROLE).send_email(message)
    assert [m.tags for m in moto.sent_messages()] == [
        {"kind": "invoice", "email_worker_batch": "0"},
        {"kind": "invoice", "email_worker_batch": "1"},
    ]


def test_a_large_message_with_an_unreadable_tags_header_is_refused_before_any_call(
    aws_env: Any, moto: Any
) -> None:
    with pytest.raises(errors.InvalidMessageError, match=TAGS_HEADER):
        Session(ROLE).send_email(tagged_message(", ".join(addresses(60)), "kind: invoice"))
    assert moto.sent_messages() == []


def test_a_request_built_by_the_worker_reaches_ses_tagged_with_its_service_request_and_batch(
    aws_env: Any, moto: Any
) -> None:
    document = {
        "version": 1,
        "request_id": "order 1842/ü",  # outside the tag alphabet: carried encoded
        "service_id": "billing",
        "from": "noreply@example.com",
        "to": addresses(60),
        "subject": "Your invoice",
        "text": "Hello",
        "tags": {"kind": "invoice"},
    }
    request = request_from(document, default_service_id=None)
    Session(ROLE).send_email(build_message(request))
    sent = moto.sent_messages()
    assert [m.tags for m in sent] == [
        {
            "kind": "invoice",
            "email_worker_service_id": "billing",
            "email_worker_request_id": "b64_b3JkZXIgMTg0Mi_DvA",
            "email_worker_batch": str(index),
        }
        for index in range(2)
    ]
    assert [read_worker_tags(m.tags or {}) for m in sent] == [
        WorkerTags("billing", "order 1842/ü", index) for index in range(2)
    ]
