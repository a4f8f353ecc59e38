"""How long the Pub/Sub client gathers a pull worker's acks before it sends them.

The client library (google-cloud-pubsub 2.x) sends the acks, nacks and lease extensions it
has been handed in one request, after waiting up to 10 ms for more
(``dispatcher._MAX_BATCH_LATENCY``, which it offers no option for). A worker that the send rate
paces finishes a request about every 20 ms (49/s, a quarter of 200 recipients/s), so every ack
went in a request of its own, and each request cost CPU in the worker and in Pub/Sub's front
end. With the wait at 100 ms, one request carries about five acks: the paced worker's CPU per
email fell by about a fifth (docs/scaling.md, "Acks gathered for 100 ms").

Waiting longer costs nothing that matters: an ack leaves up to 100 ms later, while the
message's lease runs for ``EMAIL_WORKER_ACK_DEADLINE_S``; a stopping worker's client sends
what it has gathered before its stream closes; and a worker killed meanwhile has those
messages delivered again, which the ledger answers with the results it recorded (no second
email).
"""

from __future__ import annotations

from worker.config.logs import get_logger

__all__ = ["ACK_BATCH_WAIT_S", "gather_acks"]

log = get_logger()

#: Seconds the client library waits for more acks before it sends those it has.
ACK_BATCH_WAIT_S = 0.1


def gather_acks(wait_s: float = ACK_BATCH_WAIT_S) -> bool:
    """Have the client library wait ``wait_s`` for more acks before sending them (for the
    streams opened from now on). False, leaving the library's own wait, when this version of
    the library does not have the constant it reads."""
    from google.cloud.pubsub_v1.subscriber._protocol import dispatcher

    if not isinstance(getattr(dispatcher, "_MAX_BATCH_LATENCY", None), float):
        log.warning("cannot set how long acks are gathered: the Pub/Sub client has changed")
        return False
    dispatcher._MAX_BATCH_LATENCY = wait_s
    return True
