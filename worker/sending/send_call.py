"""SES v2 ``SendEmail`` through botocore's signer, credentials and connections, minus its call.

A botocore client call spends much of its CPU on generic machinery: checking the parameters
against the model, serialising by the model, resolving the endpoint from its rules, a dozen
events. For the one call the worker makes for every email, always of the same shape, that was
the largest single cost of handling a request (bench/run.py --profile; docs/scaling.md, issue
13). `SendEmailCall` makes that call itself and keeps what matters from the client:

* the request is the one the client makes (method, URL, JSON body), signed by botocore's
  SigV4 signer with the session's refreshable credentials, for the client's region and the
  service's signing name, and sent through the client's own connection pool, with its
  timeouts and TLS settings (`worker.sending.pool`; through the client's HTTP session when a
  proxy is configured);
* the answer is read by botocore's parser for the service's protocol;
* after a failed attempt, the client's own ``needs-retry`` handlers decide whether and when to
  try again (its retry mode's rules, backoff and quota, and hooks such as
  `worker.sending.aws.refuse_blind_resends`), and the client's ``after-call`` handlers see the
  outcome, as in a client call; an error answer is raised as the client's exception for its
  code.

Other hooks registered on the client (``before-call``, ``before-sign``, ``before-send`` and the
like) are not run; the session registers none. `SendEmailCall.for_client` returns None for a
client it cannot stand in for, and the caller then uses the client.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.parsers
from botocore.endpoint import convert_to_response_dict
from botocore.hooks import first_non_none_response

from worker.sending.pool import PoolTransport

__all__ = ["SendEmailCall"]

_OPERATION = "SendEmail"


class SendEmailCall:
    """``client.send_email(...)`` for a raw message, made without the client's generic path.

    Called with the keyword arguments of ``send_email`` that the session uses
    (``FromEmailAddress``, ``Destination``, ``Content`` with ``Raw`` data, ``EmailTags``,
    ``TenantName``); returns
    the parsed answer, or raises what the client would raise.
    """

    def __init__(self, client: Any, *, credentials: Any, user_agent: str) -> None:
        service = client.meta.service_model
        operation = service.operation_model(_OPERATION)
        self.client = client
        self._operation = operation
        self._url = client.meta.endpoint_url.rstrip("/") + operation.http["requestUri"]
        self._method = operation.http["method"]
        self._signing_name = service.signing_name
        self._region = client.meta.region_name
        self._credentials = credentials
        self._endpoint = client._endpoint
        http = client._endpoint.http_session
        self._http: Any = PoolTransport.for_session(http, self._url) or http
        self._parsers = botocore.parsers.ResponseParserFactory()
        self._protocol = service.resolved_protocol
        event_suffix = f"{service.service_id.hyphenize()}.{operation.name}"
        self._needs_retry_event = f"needs-retry.{event_suffix}"
        self._after_call_event = f"after-call.{event_suffix}"
        self._after_call_error_event = f"after-call-error.{event_suffix}"
        self._user_agent = user_agent

    @classmethod
    def for_client(cls, client: Any, *, credentials: Any, user_agent: str) -> SendEmailCall | None:
        """A call standing in for ``client.send_email``; None if `client` is not a botocore
        SES v2 client of the protocol and signer this makes requests for (a test's fake)."""
        try:
            service = client.meta.service_model
            usable = (
                service.service_name == "sesv2"
                and service.resolved_protocol == "rest-json"
                and service.signature_version == "v4"
                and client._endpoint.http_session is not None
            )
        except AttributeError:
            return None
        return cls(client, credentials=credentials, user_agent=user_agent) if usable else None

    def __call__(
        self,
        *,
        FromEmailAddress: str,  # the client's parameter names
        Destination: dict[str, Sequence[str]],
        Content: dict[str, dict[str, bytes]],
        EmailTags: list[dict[str, str]] | None = None,
        TenantName: str | None = None,
    ) -> dict[str, Any]:
        body = _request_body(FromEmailAddress, Destination, Content, EmailTags, TenantName)
        # One context for the retry handlers and the after-call handlers, as in a client call:
        # the standard retry quota is taken on a retry and given back after a success.
        context: dict[str, Any] = {}
        try:
            attempt = 1
            while True:
                answer, error = self._attempt(body)
                if error is None and answer is not None and answer[0].status_code < 300:
                    break  # no retry mode repeats a success
                responses = self.client.meta.events.emit(
                    self._needs_retry_event,
                    response=answer,
                    endpoint=self._endpoint,
                    operation=self._operation,
                    attempts=attempt,
                    caught_exception=error,
                    request_dict={"context": context},
                )
                delay = first_non_none_response(responses)
                if delay is None or delay is False:
                    break
                time.sleep(delay)
                attempt += 1
            if error is not None:
                raise error
        except Exception as failure:
            self.client.meta.events.emit(
                self._after_call_error_event, exception=failure, context=context
            )
            raise
        assert answer is not None
        http_response, parsed = answer
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = attempt - 1
        self.client.meta.events.emit(
            self._after_call_event,
            http_response=http_response,
            parsed=parsed,
            model=self._operation,
            context=context,
        )
        if http_response.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self.client.exceptions.from_code(code)(parsed, _OPERATION)
        return dict(parsed)

    def _attempt(self, body: bytes) -> tuple[tuple[Any, dict[str, Any]] | None, Exception | None]:
        """Sign and send one attempt: the answer (HTTP response, parsed), or the HTTP failure."""
        request = botocore.awsrequest.AWSRequest(
            method=self._method,
            url=self._url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": self._user_agent},
        )
        # Each attempt is signed afresh, with credentials refreshed when they are due.
        signer = botocore.auth.SigV4Auth(
            self._credentials.get_frozen_credentials(), self._signing_name, self._region
        )
        signer.add_auth(request)
        try:
            http_response = self._http.send(request.prepare())
        except Exception as error:  # as the client does: its retry handlers judge any of these
            return None, error
        response = convert_to_response_dict(http_response, self._operation)
        parser = self._parsers.create_parser(self._protocol)  # one per answer, as the client
        parsed = parser.parse(response, self._operation.output_shape)
        if http_response.status_code >= 300:
            # The members of the error's own shape, as the client adds them.
            code = parsed.get("Error", {}).get("Code")
            shape = self._operation.service_model.shape_for_error_code(code) if code else None
            if shape is not None:
                parsed.update(parser.parse(response, shape))
        return (http_response, parsed), None


def _request_body(
    from_address: str,
    destination: dict[str, Sequence[str]],
    content: dict[str, dict[str, bytes]],
    tags: list[dict[str, str]] | None,
    tenant: str | None = None,
) -> bytes:
    """SendEmail's JSON body, its members in the order the client's serialiser writes them,
    the raw message in base64.

    The base64 is spliced into the JSON as bytes (it needs no escaping): going through a str
    and ``json.dumps`` would hold two more copies of it, 18 MB each for a 10 MB attachment.
    """
    document: dict[str, Any] = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": list(destination["ToAddresses"])},
        "Content": {"Raw": {"Data": ""}},
    }
    if tags is not None:
        document["EmailTags"] = tags
    if tenant is not None:
        document["TenantName"] = tenant
    # Only the structure can hold this unescaped; quotes in any value are escaped.
    head, _, tail = json.dumps(document).encode("utf-8").partition(_EMPTY_DATA)
    data = base64.b64encode(content["Raw"]["Data"])
    return b"".join((head, b'"Data": "', data, b'"', tail))


_EMPTY_DATA = b'"Data": ""'
