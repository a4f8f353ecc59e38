"""Benchmark probe: where a subscriber's time and CPU go, loaded through PYTHONPATH.

    .venv/bin/python bench/run.py --env PYTHONPATH=bench/probe \\
        --env 'BENCH_TIMELINE=/tmp/timeline-{kind}.jsonl' --timings /tmp/timings.jsonl
    .venv/bin/python bench/run.py --contenders worker --worker-env PYTHONPATH=bench/probe \\
        --worker-env BENCH_STAGES=/tmp/stages.jsonl

Python imports ``sitecustomize`` at start-up from the path, so the subscriber under test (the
worker or a baseline) runs unchanged with a few library functions wrapped:

* ``BENCH_TIMELINE=FILE``: for every request, the monotonic time (the clock the benchmark
  stamps publishes and results with) at which the stream delivered it, the callback started,
  the ledger claim, the SES call, the ledger record, the result publish and the ack began and
  ended; written to FILE at exit as JSON lines ``[request_id, stage, seconds]``.
* ``BENCH_STAGES=FILE`` (the worker): the CPU time (the calling thread's) spent in each stage
  of handling a request; appended to FILE at exit as one JSON object.

`bench/breakdown.py` reads both. Benchmark only: nothing here is imported by the worker.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import os
import threading
import time
from typing import Any

_TIMELINE = os.environ.get("BENCH_TIMELINE")
_STAGES = os.environ.get("BENCH_STAGES")
_lock = threading.Lock()
_current = threading.local()  # the request the thread is handling, for the timeline


def _request_id(data: bytes) -> str | None:
    try:
        value = json.loads(data).get("request_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _wrap(owner: Any, name: str, around: Any) -> None:
    original = getattr(owner, name)
    setattr(owner, name, functools.wraps(original)(around(original)))


def _install_timeline(path: str) -> None:
    from google.cloud.pubsub_v1.publisher import client as publisher
    from google.cloud.pubsub_v1.publisher import futures
    from google.cloud.pubsub_v1.subscriber import message
    from google.cloud.pubsub_v1.subscriber._protocol import streaming_pull_manager as manager

    stamps: list[tuple[str, str, float]] = []

    def stamp(request_id: str | None, stage: str) -> None:
        if request_id:
            with _lock:
                stamps.append((request_id, stage, time.monotonic()))

    def on_response(original: Any) -> Any:
        def wrapped(self: Any, response: Any) -> Any:
            if response is not None:
                for received in response._pb.received_messages:
                    stamp(_request_id(received.message.data), "received")
            return original(self, response)

        return wrapped

    def callback(original: Any) -> Any:
        def wrapped(user_callback: Any, on_error: Any, pulled: Any) -> Any:
            _current.request_id = request_id = _request_id(pulled.data)
            stamp(request_id, "callback")
            try:
                return original(user_callback, on_error, pulled)
            finally:
                stamp(request_id, "callback_end")
                _current.request_id = None

        return wrapped

    def timed(before: str, after: str) -> Any:
        def around(original: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                request_id = getattr(_current, "request_id", None)
                stamp(request_id, before)
                try:
                    return original(*args, **kwargs)
                finally:
                    stamp(request_id, after)

            return wrapped

        return around

    _wrap(manager.StreamingPullManager, "_on_response", on_response)
    _wrap(manager, "_wrap_callback_errors", callback)
    import botocore.client

    _wrap(botocore.client.BaseClient, "_make_api_call", timed("send", "sent"))
    _wrap(publisher.Client, "publish", timed("publish", "publish_called"))
    _wrap(futures.Future, "result", timed("wait_publish", "publish_done"))
    _wrap(message.Message, "ack", timed("ack", "acked"))
    try:  # the worker's own stages
        from worker.ledger.sqlite_ledger import SqliteLedger
        from worker.sending.send_call import SendEmailCall
    except ImportError:
        pass
    else:
        _wrap(SendEmailCall, "__call__", timed("send", "sent"))
        _wrap(SqliteLedger, "claim", timed("claim", "claimed"))
        _wrap(SqliteLedger, "complete", timed("record", "recorded"))

    def write() -> None:
        with open(path, "w") as out:
            for entry in stamps:
                out.write(json.dumps(entry) + "\n")

    atexit.register(write)


def _install_stages(path: str) -> None:
    import botocore.client

    import worker.processing.admission as admission
    import worker.processing.handling as handling
    import worker.processing.metrics as metrics
    import worker.processing.outputs as outputs
    import worker.processing.send_request as send
    import worker.sending.ses_session as session
    from worker.ledger.sqlite_ledger import SqliteLedger

    cpu_s: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()

    def measured(stage: str) -> Any:
        def around(original: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                started = time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent = time.thread_time() - started
                    with _lock:
                        cpu_s[stage] += spent
                        calls[stage] += 1

            return wrapped

        return around

    for owner, name, stage in (
        (handling.Handler, "__call__", "handler (all of it)"),
        (admission, "parse_request", "parse and validate"),
        (send, "sender_allowed", "sender check"),
        (send, "build_message", "build the message"),
        (session, "prepare_message", "envelope and bytes"),
        (session.Session, "_send_batch", "SES call"),
        (botocore.client.BaseClient, "_make_api_call", "botocore client calls"),
        (SqliteLedger, "claim", "ledger claim"),
        (SqliteLedger, "complete", "ledger record"),
        (outputs.Outputs, "settle", "publish result and ack"),
        (metrics.Metrics, "observe", "metrics"),
    ):
        _wrap(owner, name, measured(stage))
    started = os.times()

    def write() -> None:
        ended = os.times()
        process_s = ended.user + ended.system - started.user - started.system
        record = {"process_cpu_s": process_s, "cpu_s": dict(cpu_s), "calls": dict(calls)}
        with open(path, "a") as out:
            out.write(json.dumps(record) + "\n")

    atexit.register(write)


if _TIMELINE:
    _install_timeline(_TIMELINE)
if _STAGES:
    _install_stages(_STAGES)
