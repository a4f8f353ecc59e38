"""The operators' side: the Pub/Sub topology, the dead-letter queue and the CLI commands.

The layer owns creating the topics and subscriptions and reading their policies
(:func:`ensure_topology`, :func:`read_max_delivery_attempts`), looking at, replaying and
purging dead letters (:class:`DeadLetterQueue`), pausing and resuming sending
(:mod:`worker.ops.pausing`), and the ``email-worker`` commands built on them and on the
client (``send``, ``dlq``, ``ledger``, ``setup``, ``pause``/``resume``/``paused``, in
:mod:`worker.ops.commands`). It reads the formats and the ledger but never loads the worker's
processing or transports. Names are imported on first use, so that the command line, which
loads this package, starts without the Pub/Sub libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.ops.dead_letter_queue import DeadLetterQueue
    from worker.ops.dead_letters import DeadLetter
    from worker.ops.topology import (
        Resource,
        SubscriptionPolicy,
        ensure_topology,
        read_max_delivery_attempts,
    )

__all__ = [
    "DeadLetter",
    "DeadLetterQueue",
    "Resource",
    "SubscriptionPolicy",
    "ensure_topology",
    "read_max_delivery_attempts",
]

_HOMES = {
    "DeadLetter": "worker.ops.dead_letters",
    "DeadLetterQueue": "worker.ops.dead_letter_queue",
    "Resource": "worker.ops.topology",
    "SubscriptionPolicy": "worker.ops.topology",
    "ensure_topology": "worker.ops.topology",
    "read_max_delivery_attempts": "worker.ops.topology",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
