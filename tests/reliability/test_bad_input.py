"""Hostile and malformed requests through the real emulator and ``email-worker pull``.

Over a thousand messages are generated up front with hypothesis (derandomised, so every run
publishes the same ones), each with exactly one defect whose documented error code is known:
bad JSON, non-UTF-8 bytes, wrong types, huge fields, line breaks in every header-bound field,
bad base64, unknown versions, too many recipients, values near the limits with one fault,
and two 2 MB bodies (about half the largest message the emulator delivers). Every one must
be rejected with its code, dead-lettered with the reason, and never sent; the worker must
stay up throughout.

Pub/Sub accepts at most 10 MB per message, a quarter of SES's 40 MB, so ``message_too_large``
cannot be reached through Pub/Sub; the near-limit bodies check that size alone does no harm.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.worker_process import ResultCollector, WorkerProcess
from tests.support.worker_stack import Stack, make_stack, request
from worker.formats.addresses import MAX_ADDRESS_LENGTH
from worker.formats.error_codes import ErrorCode
from worker.formats.request import (
    MAX_ATTACHMENTS,
    MAX_FILENAME_LENGTH,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_RECIPIENTS,
    MAX_REPLY_TO,
    MAX_REQUEST_ID_LENGTH,
    MAX_SUBJECT_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    RESERVED_HEADER_NAMES,
    RESERVED_HEADER_PREFIXES,
)

GENERATED = 1100
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()


@dataclass(frozen=True)
class Case:
    kind: str
    data: bytes
    code: str


def doc(**fields: Any) -> dict[str, Any]:
    return request(**fields)


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def case(kind: str, document: Any, code: ErrorCode) -> Case:
    data = document if isinstance(document, bytes) else encode(document)
    return Case(kind, data, code.value)


LOCAL = st.from_regex(r"[a-z][a-z0-9]{0,11}", fullmatch=True)
LINE_BREAKS = st.sampled_from(
    [
        "\r\n",
        "\n",
        "\r",
        "\x00",
        "\u2028",
        "\u2029",
        "\x85",
        "\x0b",
        "\x0c",
        "\r\nBcc: x@evil.example",
    ]
)
WRONG_VALUES = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2),
)


def inject(draw: st.DrawFn, value: str) -> str:
    position = draw(st.integers(min_value=0, max_value=len(value)))
    return value[:position] + draw(LINE_BREAKS) + value[position:]


@st.composite
def not_utf8(draw: Any) -> Case:
    if draw(st.booleans()):
        return case("not-utf8", b"\xff" + draw(st.binary(max_size=200)), ErrorCode.INVALID_JSON)
    subject = draw(st.text(alphabet="éàüßñçøå", min_size=1, max_size=40))
    text = json.dumps(doc(subject=subject), ensure_ascii=False)
    encoding = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-32"]))
    return case("not-utf8", text.encode(encoding), ErrorCode.INVALID_JSON)


@st.composite
def bad_json(draw: Any) -> Case:
    whole = encode(doc(subject=draw(st.text(max_size=30))))
    choice = draw(st.integers(min_value=0, max_value=6))
    if choice == 0:  # truncated anywhere: an object never survives losing its closing brace
        cut = draw(st.integers(min_value=0, max_value=len(whole) - 1))
        return case("bad-json", whole[:cut], ErrorCode.INVALID_JSON)
    if choice == 1:
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return case("bad-json", f'{{"version": {constant}}}'.encode(), ErrorCode.INVALID_JSON)
    if choice == 2:
        key = draw(st.sampled_from(["version", "to", "subject", "from", "service_id"]))
        text = whole.decode()[:-1] + f', "{key}": "dup"}}'
        return case("bad-json", text.encode(), ErrorCode.INVALID_JSON)
    if choice == 3:
        depth = draw(st.integers(min_value=2_000, max_value=40_000))
        return case("bad-json", b"[" * depth + b"]" * depth, ErrorCode.INVALID_JSON)
    if choice == 4:
        digits = draw(st.integers(min_value=5_000, max_value=20_000))
        return case("bad-json", b'{"version": 1' + b"0" * digits + b"}", ErrorCode.INVALID_JSON)
    if choice == 5:
        surrogate = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udbff"]))
        text = whole.decode()[:-1] + f', "html": "a{surrogate}b"}}'
        return case("bad-json", text.encode(), ErrorCode.INVALID_JSON)
    junk = draw(st.sampled_from(["{'version': 1}", '{"version": 1,}', "{version: 1}", "// c\n{}"]))
    return case("bad-json", junk.encode(), ErrorCode.INVALID_JSON)


@st.composite
def wrong_types(draw: Any) -> Case:
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        document = draw(st.one_of(WRONG_VALUES, st.text(max_size=20), st.none()))
        if isinstance(document, dict):
            document = [document]
        return case("wrong-type", document, ErrorCode.INVALID_REQUEST)
    name = draw(
        st.sampled_from(
            [
                "request_id",
                "service_id",
                "from",
                "to",
                "cc",
                "bcc",
                "reply_to",
                "subject",
                "text",
                "html",
                "headers",
                "attachments",
                "tags",
            ]
        )
    )
    value = draw(WRONG_VALUES)
    if name in ("headers", "tags", "attachments") and isinstance(value, list):
        value = {"x": value} if name != "attachments" else value
    return case("wrong-type", doc(**{name: value}), ErrorCode.INVALID_REQUEST)


@st.composite
def too_big(draw: Any) -> Case:
    over = draw(st.integers(min_value=1, max_value=5_000))
    field = draw(st.integers(min_value=0, max_value=11))
    if field == 0:
        return case(
            "huge", doc(subject="s" * (MAX_SUBJECT_LENGTH + over)), ErrorCode.INVALID_REQUEST
        )
    if field == 1:
        return case(
            "huge", doc(request_id="r" * (MAX_REQUEST_ID_LENGTH + over)), ErrorCode.INVALID_REQUEST
        )
    if field == 2:
        headers = {"X-Long": "v" * (MAX_HEADER_VALUE_LENGTH + over)}
        return case("huge", doc(headers=headers), ErrorCode.INVALID_REQUEST)
    if field == 3:
        headers = {"X" * (MAX_HEADER_NAME_LENGTH + over): "v"}
        return case("huge", doc(headers=headers), ErrorCode.INVALID_REQUEST)
    if field == 4:
        headers = {f"X-H{n}": "v" for n in range(MAX_HEADERS + 1 + over % 50)}
        return case("huge", doc(headers=headers), ErrorCode.INVALID_REQUEST)
    if field == 5:
        address = "a" * (MAX_ADDRESS_LENGTH + over) + "@example.org"
        target = draw(st.sampled_from(["to", "cc", "bcc", "reply_to", "from"]))
        value = address if target == "from" else [address]
        return case("huge", doc(**{target: value}), ErrorCode.INVALID_ADDRESS)
    if field == 6:
        tags = {f"t{n}": "v" for n in range(MAX_TAGS + 1 + over % 50)}
        return case("huge", doc(tags=tags), ErrorCode.INVALID_REQUEST)
    if field == 7:
        return case(
            "huge", doc(tags={"t": "v" * (MAX_TAG_LENGTH + over)}), ErrorCode.INVALID_REQUEST
        )
    if field == 8:
        attachment = {
            "filename": "f" * (MAX_FILENAME_LENGTH + over),
            "content_type": "text/plain",
            "content_base64": b64(b"x"),
        }
        return case("huge", doc(attachments=[attachment]), ErrorCode.INVALID_REQUEST)
    if field == 9:
        attachment = {"filename": "a.txt", "content_type": "text/plain", "content_base64": "eA=="}
        count = MAX_ATTACHMENTS + 1 + over % 30
        return case("huge", doc(attachments=[attachment] * count), ErrorCode.INVALID_REQUEST)
    if field == 10:
        reply_to = [f"r{n}@example.org" for n in range(MAX_REPLY_TO + 1 + over % 20)]
        return case("huge", doc(reply_to=reply_to), ErrorCode.INVALID_REQUEST)
    text = "x" * draw(st.integers(min_value=1, max_value=200_000)) + "\x00"
    return case("huge", doc(text=text), ErrorCode.INVALID_REQUEST)


@st.composite
def line_breaks(draw: Any) -> Case:
    field = draw(
        st.sampled_from(
            [
                "subject",
                "from",
                "to",
                "cc",
                "bcc",
                "reply_to",
                "header-value",
                "header-name",
                "filename",
                "content_type",
            ]
        )
    )
    if field == "subject":
        document = doc(subject=inject(draw, draw(st.text(max_size=60))))
    elif field == "from":
        document = doc(**{"from": inject(draw, "Billing <billing@example.com>")})
    elif field in ("to", "cc", "bcc", "reply_to"):
        address = inject(draw, f"{draw(LOCAL)}@example.org")
        document = doc(**{field: [address]})
    elif field == "header-value":
        document = doc(headers={"X-Campaign": inject(draw, draw(st.text(max_size=60)))})
    elif field == "header-name":
        document = doc(headers={inject(draw, "X-Campaign"): "spring"})
    else:
        attachment = {"filename": "a.txt", "content_type": "text/plain", "content_base64": "eA=="}
        attachment[field] = inject(draw, attachment[field])
        document = doc(attachments=[attachment])
    return case("line-break", document, ErrorCode.HEADER_INJECTION)


@st.composite
def bad_base64(draw: Any) -> Case:
    good = b64(draw(st.binary(min_size=1, max_size=300)))
    how = draw(st.integers(min_value=0, max_value=4))
    position = draw(st.integers(min_value=0, max_value=len(good)))
    if how == 0:
        bad = good[:position] + draw(st.sampled_from(["\n", "\r\n", " ", "\t"])) + good[position:]
    elif how == 1:
        bad = (
            good[:position]
            + draw(st.sampled_from(["!", "*", "é", "-", "_", "."]))
            + good[position:]
        )
    elif how == 2:
        bad = (
            good.rstrip("=") + "=" * (1 + (4 - len(good.rstrip("="))) % 4)
            if good.endswith("=")
            else good + "="
        )
    elif how == 3:
        bad = good + "===="
    else:
        bad = "=" + good
    if draw(st.booleans()):
        return case(
            "bad-base64",
            {"version": 1, "service_id": "billing", "raw": bad},
            ErrorCode.INVALID_BASE64,
        )
    attachment = {
        "filename": "a.bin",
        "content_type": "application/octet-stream",
        "content_base64": bad,
    }
    return case("bad-base64", doc(attachments=[attachment]), ErrorCode.INVALID_BASE64)


@st.composite
def unknown_version(draw: Any) -> Case:
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        document = doc()
        if draw(st.booleans()):
            del document["version"]
        else:
            document["version"] = None
        return case("version", document, ErrorCode.INVALID_REQUEST)
    version = draw(
        st.one_of(
            st.integers(min_value=-(10**30), max_value=10**30).filter(lambda v: v != 1),
            st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 1),
            st.text(max_size=10),
            st.booleans(),
            st.lists(st.integers(min_value=0, max_value=2), max_size=2),
        )
    )
    return case("version", doc(version=version), ErrorCode.UNSUPPORTED_VERSION)


@st.composite
def too_many_recipients(draw: Any) -> Case:
    if draw(st.booleans()):
        count = MAX_RECIPIENTS + draw(st.integers(min_value=1, max_value=300))
        field = draw(st.sampled_from(["to", "cc", "bcc"]))
        addresses = [f"u{n}@example.org" for n in range(count)]
        document = (
            doc(**{field: addresses}) if field == "to" else doc(**{field: addresses, "to": None})
        )
        return case("recipients", document, ErrorCode.TOO_MANY_RECIPIENTS)
    to = draw(st.integers(min_value=1, max_value=MAX_RECIPIENTS))
    cc = draw(st.integers(min_value=0, max_value=MAX_RECIPIENTS - to + 300))
    bcc = MAX_RECIPIENTS + draw(st.integers(min_value=1, max_value=50)) - to - cc
    if bcc < 0 or bcc > MAX_RECIPIENTS:
        bcc = max(0, MAX_RECIPIENTS + 1 - to - cc)
    names = iter(f"u{n}@example.org" for n in range(3 * MAX_RECIPIENTS))
    document = doc(
        to=[next(names) for _ in range(to)],
        cc=[next(names) for _ in range(cc)],
        bcc=[next(names) for _ in range(bcc)],
    )
    return case("recipients", document, ErrorCode.TOO_MANY_RECIPIENTS)


@st.composite
def policy_and_addresses(draw: Any) -> Case:
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        name = draw(st.sampled_from(sorted(RESERVED_HEADER_NAMES) + list(RESERVED_HEADER_PREFIXES)))
        name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
        if name.endswith("-"):
            name += draw(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True))
        return case("policy", doc(headers={name: "v"}), ErrorCode.RESERVED_HEADER)
    if choice == 1:
        service = draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True))
        if service == "billing":
            service = "payroll"
        return case("policy", doc(service_id=service), ErrorCode.UNKNOWN_SERVICE)
    if choice == 2:
        domain = draw(st.sampled_from(["elsewhere.example", "example.net", "evil.example.org"]))
        return case(
            "policy", doc(**{"from": f"{draw(LOCAL)}@{domain}"}), ErrorCode.SENDER_NOT_ALLOWED
        )
    local = draw(LOCAL)
    address = draw(
        st.sampled_from(
            [
                local,
                f"{local}@@example.org",
                f"{local}@localhost",
                f"{local}@example.test",
                f"{local}@[127.0.0.1]",
                f'"{local} x"@example.org',
                f"{local}@-example.org",
                f"{local} x@example.org",
                f"{local}@",
                "@example.org",
                f"{local}@example..org",
                f"{local}<x@example.org",
                f"Name <{local}@example.org",
            ]
        )
    )
    target = draw(st.sampled_from(["to", "cc", "bcc", "reply_to", "from"]))
    value = address if target == "from" else [address]
    return case("policy", doc(**{target: value}), ErrorCode.INVALID_ADDRESS)


@st.composite
def near_limits(draw: Any) -> Case:
    """Values at their limits (allowed) plus one defect elsewhere."""
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        to = [f"u{n}@example.org" for n in range(MAX_RECIPIENTS)]
        return case("near-limit", doc(to=to, service_id="payroll"), ErrorCode.UNKNOWN_SERVICE)
    if choice == 1:
        document = doc(subject="s" * MAX_SUBJECT_LENGTH, headers={"Date": "today"})
        return case("near-limit", document, ErrorCode.RESERVED_HEADER)
    if choice == 2:
        size = draw(st.integers(min_value=10_000, max_value=30_000))
        document = doc(text="b" * size, html="<p>" + "h" * size, **{"from": "x@example.net"})
        return case("near-limit", document, ErrorCode.SENDER_NOT_ALLOWED)
    attachment = {"filename": "a.txt", "content_type": "text/plain", "content_base64": "eA=="}
    attachments = [attachment] * (MAX_ATTACHMENTS - 1) + [{**attachment, "content_base64": "eA="}]
    return case("near-limit", doc(attachments=attachments), ErrorCode.INVALID_BASE64)


HOSTILE = st.one_of(
    not_utf8(),
    bad_json(),
    wrong_types(),
    too_big(),
    line_breaks(),
    bad_base64(),
    unknown_version(),
    too_many_recipients(),
    policy_and_addresses(),
    near_limits(),
)


def generate_cases(count: int) -> list[Case]:
    """``count`` examples of ``HOSTILE``, the same on every run (derandomised, no database)."""
    cases: list[Case] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(HOSTILE)
    def collect(generated: Case) -> None:
        cases.append(generated)

    collect()
    return cases


def huge_bodies() -> list[Case]:
    """Two requests of 2 MB, each with one bad address.

    Pub/Sub takes messages up to 10 MB, but the emulator delivers none above about 4 MiB (a
    larger one, or a streamed batch of messages that adds up to more, is accepted and never
    delivered: it is batched again and again), so these stay well under that, are published
    one at a time, and the generated messages are kept small enough that no batch of them
    comes near it.
    """
    size = 2_000_000
    return [
        case("big-body", doc(text="t" * size, to=["not an address"]), ErrorCode.INVALID_ADDRESS),
        case(
            "big-body",
            json.dumps(
                doc(html="<p>" + "é" * (size // 2), cc=["x@localhost"]), ensure_ascii=False
            ).encode(),
            ErrorCode.INVALID_ADDRESS,
        ),
    ]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    generated = generate_cases(GENERATED)
    assert len(generated) >= 1000
    return generated + huge_bodies()


@pytest.fixture
def stack(pubsub_env: Any, fault_proxy: Any, tmp_path: Path) -> Stack:
    return make_stack(pubsub_env, tmp_path, fault_proxy.endpoint)


def test_generated_cases_cover_every_kind_of_hostile_input(cases: list[Case]) -> None:
    kinds = Counter(c.kind for c in cases)
    assert set(kinds) == {
        "not-utf8",
        "bad-json",
        "wrong-type",
        "huge",
        "line-break",
        "bad-base64",
        "version",
        "recipients",
        "policy",
        "near-limit",
        "big-body",
    }
    assert all(count >= 20 for kind, count in kinds.items() if kind != "big-body")
    codes = {c.code for c in cases}
    assert codes <= {code.value for code in ErrorCode}
    assert all(f"`{code}`" in DOCS for code in codes)


def test_every_hostile_message_is_rejected_with_its_documented_code_dead_lettered_and_not_sent(
    stack: Stack, cases: list[Case], moto: Any, fault_proxy: Any, tmp_path: Path
) -> None:
    worker = WorkerProcess(stack.env, tmp_path / "worker.log")
    started = time.monotonic()
    with ResultCollector(stack.emulator, stack.results_subscription) as collector:
        publisher = stack.emulator.publisher
        numbered = list(enumerate(cases))
        small = [(n, c) for n, c in numbered if c.kind != "big-body"]
        futures = [publisher.publish(stack.queue.topic, c.data, case=str(n)) for n, c in small]
        by_message_id = {
            f.result(timeout=120): (n, c) for f, (n, c) in zip(futures, small, strict=True)
        }
        collector.wait_for_count(len(small), timeout_s=240)
        dead = stack.dead_letters(len(small), timeout_s=120)
        # One at a time: the emulator never delivers a streamed batch over about 4 MiB.
        for n, big in [(n, c) for n, c in numbered if c.kind == "big-body"]:
            message_id = stack.emulator.publish(stack.queue.topic, big.data, case=str(n))
            by_message_id[message_id] = (n, big)
            collector.wait_for_requests({message_id}, timeout_s=60)
            dead += stack.dead_letters(1, timeout_s=60)
        assert worker.running, worker.log()[-3000:]

        # The worker is still up and still sends: a valid request gets through.
        stack.publish(request(request_id="after-the-storm"))
        collector.wait_for_requests({"after-the-storm"}, timeout_s=60)
        assert worker.terminate() == 0, worker.log()[-3000:]
        results = collector.snapshot()
    elapsed = time.monotonic() - started

    [after] = [r for r in results if r["request_id"] == "after-the-storm"]
    assert after["status"] == "sent"
    results = [r for r in results if r["request_id"] != "after-the-storm"]
    assert len(results) == len(cases)
    assert {r["pubsub_message_id"] for r in results} == set(by_message_id)
    wrong = []
    for result in results:
        n, expected = by_message_id[result["pubsub_message_id"]]
        if result["status"] != "rejected" or result["error"]["code"] != expected.code:
            wrong.append((n, expected.kind, expected.code, result["status"], result["error"]))
        assert result["message_ids"] == []
        assert result["error"]["message"]
    assert wrong == [], wrong[:10]

    assert len(dead) == len(cases)
    for message in dead:
        n, expected = by_message_id[message.attributes["email_worker_original_message_id"]]
        assert message.attributes["case"] == str(n)
        assert message.attributes["email_worker_error_code"] == expected.code
        assert message.attributes["email_worker_error_message"]
        assert message.data == expected.data
    assert stack.nothing_more(stack.queue.dead_letter_subscription, wait_s=1)

    # Nothing reached SES, nor was even attempted: the one send is the final valid request.
    assert fault_proxy.count("ses_send") == 1
    assert len(moto.sent_messages()) == 1
    records = worker.log_records()
    assert not [r for r in records if r.get("severity") == "ERROR"]
    print(
        f"\nbad input: {len(cases)} hostile messages ({dict(Counter(c.kind for c in cases))}) "
        f"rejected in {elapsed:.0f}s; codes {dict(Counter(c.code for c in cases))}; none sent"
    )
