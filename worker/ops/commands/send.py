"""``email-worker send``: publish one request, optionally wait for its result.

A little over 300 lines: one command's many options; reading a template's data and the
``gs://`` attachments is in :mod:`worker.ops.commands.send_references`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from worker.config.names import colliding_name
from worker.ops.commands.common import (
    EXIT_FAILURE,
    EXIT_NO_RESULT,
    EXIT_NOT_SENT,
    EXIT_OK,
    EXIT_USAGE,
    exit_codes_epilog,
    fail,
    load_settings,
    pubsub_errors,
)
from worker.ops.commands.send_references import gcs_attachments, template_spec

if TYPE_CHECKING:
    from worker.client import EmailClient, EmailRequestSpec
    from worker.config.settings import Settings
    from worker.formats.result import EmailResult

__all__ = ["send"]


@click.command(
    epilog=exit_codes_epilog(EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_SENT, EXIT_NO_RESULT)
)
@click.option("--to", multiple=True, metavar="ADDRESS", help="Recipient; repeat for more.")
@click.option("--cc", multiple=True, metavar="ADDRESS", help="Cc recipient; repeatable.")
@click.option("--bcc", multiple=True, metavar="ADDRESS", help="Bcc recipient; repeatable.")
@click.option("--from", "sender", metavar="ADDRESS", help="From address (default: the service's).")
@click.option("--subject", help="Subject line.")
@click.option("--text", help="Plain-text body.")
@click.option("--html", help="HTML body.")
@click.option(
    "--attach",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    help="File to attach (type guessed from its name); repeatable.",
)
@click.option(
    "--attach-gcs",
    multiple=True,
    metavar="[FILENAME=]gs://BUCKET/OBJECT",
    help="Object the worker attaches, read from Cloud Storage when it sends (file name "
    "default: the object's last segment; type guessed from it); repeatable.",
)
@click.option("--template", "template_name", metavar="NAME", help="Send the service's template.")
@click.option(
    "--template-data",
    type=click.File("rb"),
    metavar="FILE",
    help="JSON object of the template's data ('-' reads stdin); needed with --template.",
)
@click.option(
    "--template-version",
    type=click.IntRange(min=1),
    metavar="N",
    help="Template version (default: the latest).",
)
@click.option("--language", metavar="L", help="Template language (default: the template's).")
@click.option(
    "--service",
    "service_id",
    metavar="SERVICE_ID",
    help="Service sending it (default: EMAIL_WORKER_SERVICE_ID, else the worker's default).",
)
@click.option("--request-id", help="Request id (default: a new UUID).")
@click.option(
    "--file",
    "request_file",
    type=click.File("rb"),
    help="Publish this v1 request JSON instead ('-' reads stdin); excludes the message options.",
)
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the result, with --wait.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the result, with --wait).")
def send(
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    sender: str | None,
    subject: str | None,
    text: str | None,
    html: str | None,
    attach: tuple[Path, ...],
    attach_gcs: tuple[str, ...],
    template_name: str | None,
    template_data: IO[bytes] | None,
    template_version: int | None,
    language: str | None,
    service_id: str | None,
    request_id: str | None,
    request_file: IO[bytes] | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Publish an email request to the requests topic and print its request_id.

    The request is checked locally with the worker's own rules first; a request the worker
    would reject is not published (exit code 2). With --wait, the command waits for the
    request's result on the results topic and exits 0 only if it was sent.

    \b
    Examples:
      email-worker send --to me@example.org --subject Hi --text Hello --wait
      email-worker send --to me@example.org --template invoice --template-data data.json
      email-worker send --file request.json
    """
    settings, project = load_settings()
    from worker.client import EmailRequestSpec

    message = EmailRequestSpec(
        to=to,
        cc=cc,
        bcc=bcc,
        sender=sender,
        subject=subject,
        text=text,
        html=html,
        attachments=gcs_attachments(attach_gcs),
        template=template_spec(template_name, template_data, template_version, language),
    )
    if request_file is None:
        document = _document_from_options(message, attach, request_id)
    elif clashing := _message_options_given(message, attach, request_id):
        fail(f"--file cannot be combined with {', '.join(clashing)}", EXIT_USAGE)
    else:
        document = _read_request_file(request_file)
    if service_id is not None:
        document["service_id"] = service_id
    request_id, service = _checked(settings, document)
    result = _publish_with_client(
        settings, project, document, service, wait_s=timeout if wait else None
    )
    if result is None:
        click.echo(json.dumps({"request_id": request_id}) if as_json else request_id)
    elif as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_result(result.to_dict())
    if result is not None and result.status != "sent":
        raise SystemExit(EXIT_NOT_SENT)


def _publish_with_client(
    settings: Settings,
    project: str,
    document: dict[str, Any],
    service: str,
    *,
    wait_s: float | None,
) -> EmailResult | None:
    """Publish ``document`` to ``service``'s requests topic; with ``wait_s``, wait that long
    for its result and return it."""
    from worker.client import EmailClient

    client = EmailClient(
        project,
        # Per-service tenancy: the service's own topic, the only one its requests count on.
        requests_topic=settings.request_topic_for(service)
        if service
        else settings.topics.requests_topic,
        results_topic=settings.topics.results_topic,
        default_service_id=settings.services.default_id,
        timeout_s=settings.process.publish_timeout_s,
    )
    try:
        if wait_s is None:
            _publish(client, document, service)
            return None
        return _publish_and_wait(client, document, service, wait_s)
    finally:
        client.close()


def _checked(settings: Settings, document: dict[str, Any]) -> tuple[str, str]:
    """The request's id (set in ``document``) and service, once it is a request the worker
    accepts from a service it knows of; otherwise a message and exit code 2."""
    from worker.client import RequestRejected, prepare_request

    default_service = settings.services.default_id
    try:
        request_id, _ = prepare_request(document, default_service_id=default_service)
    except RequestRejected as rejection:
        fail(
            f"the worker would reject this request: {rejection.code}: {rejection.message}",
            EXIT_USAGE,
        )
    document["request_id"] = request_id
    service = document.get("service_id") or default_service
    if settings.services.per_service and not service:
        fail(
            "name the service (--service, a service_id in the file, or "
            "EMAIL_WORKER_SERVICE_ID): each service publishes to its own topic",
            EXIT_USAGE,
        )
    if service and (collision := colliding_name(settings, service)) is not None:
        fail(f"{collision}; nothing was published", EXIT_USAGE)
    return request_id, service or ""


def _publish(client: EmailClient, document: dict[str, Any], service: str) -> None:
    topic_path = client.topic_for(service)  # the requests topic, as a full path
    with pubsub_errors(f"publishing to {topic_path}", not_found=_missing_topic(topic_path)):
        client.publish(document)


def _publish_and_wait(
    client: EmailClient, document: dict[str, Any], service: str, timeout: float
) -> EmailResult:
    """Publish ``document`` and wait up to ``timeout`` seconds for its result."""
    from worker.client import ResultTimeout

    request_id = document["request_id"]
    with (
        pubsub_errors(
            f"subscribing to {client.results_topic}",
            not_found=_missing_topic(client.results_topic),
        ),
        # Its own service's result only: another service may use the same request id.
        client.expect_result(request_id, service_id=service or None) as pending,
    ):
        _publish(client, document, service)
        click.echo(
            f"published request {request_id}; waiting up to {timeout:g} s for its result",
            err=True,
        )
        with pubsub_errors(f"waiting for the result on {pending.subscription}"):
            try:
                return pending.wait(timeout)
            except ResultTimeout:
                fail(
                    f"no result for request {request_id} within {timeout:g} s; it may "
                    "still be sent (is the worker running?)",
                    EXIT_NO_RESULT,
                )


def _missing_topic(topic: str) -> str:
    return f"topic {topic} does not exist (create the topics with `email-worker setup`)"


def _read_request_file(stream: IO[bytes]) -> dict[str, Any]:
    name = getattr(stream, "name", "the request file")
    try:
        document = json.loads(stream.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        fail(f"{name}: not a JSON document ({error})", EXIT_USAGE)
    if not isinstance(document, dict):
        fail(f"{name}: the request must be a JSON object", EXIT_USAGE)
    return document


def _message_options_given(
    message: EmailRequestSpec, attach: tuple[Path, ...], request_id: str | None
) -> list[str]:
    """The message options given, by name (none may be given with --file)."""
    given = {
        "--to": message.to,
        "--cc": message.cc,
        "--bcc": message.bcc,
        "--from": message.sender,
        "--subject": message.subject,
        "--text": message.text,
        "--html": message.html,
        "--attach": attach,
        "--attach-gcs": message.attachments,
        "--template": message.template,
        "--request-id": request_id,
    }
    return [name for name, value in given.items() if value]


def _document_from_options(
    message: EmailRequestSpec, attach: tuple[Path, ...], request_id: str | None
) -> dict[str, Any]:
    """The request the message options describe, with the files to attach read."""
    from worker.client import AttachmentSpec

    if not (message.to or message.cc or message.bcc):
        fail("give at least one recipient (--to, --cc or --bcc), or --file", EXIT_USAGE)
    try:
        attachments = [AttachmentSpec.from_path(path) for path in attach]
    except OSError as error:
        fail(f"cannot read an attachment: {error}", EXIT_USAGE)
    every = [*attachments, *message.attachments]  # files first, then gs:// objects
    return replace(message, attachments=every, request_id=request_id).to_document()


def _print_result(result: dict[str, Any]) -> None:
    click.echo(f"request_id: {result['request_id']}")
    click.echo(f"status: {result['status']}")
    if result["message_ids"]:
        click.echo(f"message_ids: {', '.join(result['message_ids'])}")
    if result["error"] is not None:
        click.echo(f"error: {result['error']['code']}: {result['error']['message']}")
