"""``email-worker send``: publish one request, optionally wait for its result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

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
      email-worker send --file request.json
    """
    settings, project = load_settings()
    if request_file is not None:
        given = {
            "--to": to,
            "--cc": cc,
            "--bcc": bcc,
            "--from": sender,
            "--subject": subject,
            "--text": text,
            "--html": html,
            "--attach": attach,
            "--request-id": request_id,
        }
        clashing = [name for name, value in given.items() if value]
        if clashing:
            fail(f"--file cannot be combined with {', '.join(clashing)}", EXIT_USAGE)
        document = _read_request_file(request_file)
    else:
        document = _document_from_options(
            to, cc, bcc, sender, subject, text, html, attach, request_id
        )
    if service_id is not None:
        document["service_id"] = service_id

    from worker.client import EmailClient, RequestRejected, ResultTimeout, prepare_request

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
    # Per-service tenancy: the service's own topic, the only one its requests count on.
    topic = settings.request_topic_for(service) if service else settings.topics.requests_topic
    client = EmailClient(
        project,
        requests_topic=topic,
        results_topic=settings.topics.results_topic,
        default_service_id=default_service,
        timeout_s=settings.process.publish_timeout_s,
    )
    topic_path = client.topic_for(service or "")  # the requests topic, as a full path
    try:
        if not wait:
            with pubsub_errors(
                f"publishing to {topic_path}",
                not_found=_missing_topic(topic_path),
            ):
                client.publish(document)
            click.echo(json.dumps({"request_id": request_id}) if as_json else request_id)
            return
        with (
            pubsub_errors(
                f"subscribing to {client.results_topic}",
                not_found=_missing_topic(client.results_topic),
            ),
            # Its own service's result only: another service may use the same request id.
            client.expect_result(request_id, service_id=service or None) as pending,
        ):
            with pubsub_errors(
                f"publishing to {topic_path}",
                not_found=_missing_topic(topic_path),
            ):
                client.publish(document)
            click.echo(
                f"published request {request_id}; waiting up to {timeout:g} s for its result",
                err=True,
            )
            with pubsub_errors(f"waiting for the result on {pending.subscription}"):
                try:
                    result = pending.wait(timeout)
                except ResultTimeout:
                    fail(
                        f"no result for request {request_id} within {timeout:g} s; it may "
                        "still be sent (is the worker running?)",
                        EXIT_NO_RESULT,
                    )
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_result(result.to_dict())
    if result.status != "sent":
        raise SystemExit(EXIT_NOT_SENT)


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


def _document_from_options(
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    sender: str | None,
    subject: str | None,
    text: str | None,
    html: str | None,
    attach: tuple[Path, ...],
    request_id: str | None,
) -> dict[str, Any]:
    from worker.client import AttachmentSpec, EmailRequestSpec

    if not (to or cc or bcc):
        fail("give at least one recipient (--to, --cc or --bcc), or --file", EXIT_USAGE)
    try:
        attachments = [AttachmentSpec.from_path(path) for path in attach]
    except OSError as error:
        fail(f"cannot read an attachment: {error}", EXIT_USAGE)
    spec = EmailRequestSpec(
        to=to,
        cc=cc,
        bcc=bcc,
        sender=sender,
        subject=subject,
        text=text,
        html=html,
        attachments=attachments,
        request_id=request_id,
    )
    return spec.to_document()


def _print_result(result: dict[str, Any]) -> None:
    click.echo(f"request_id: {result['request_id']}")
    click.echo(f"status: {result['status']}")
    if result["message_ids"]:
        click.echo(f"message_ids: {', '.join(result['message_ids'])}")
    if result["error"] is not None:
        click.echo(f"error: {result['error']['code']}: {result['error']['message']}")
