"""The ledger claims this process holds, so that a stopping worker leaves none it need not.

A delivery that claimed its request either finishes it (the result is stored) or gives the
claim back (released), and a stop normally lets it do one or the other: waits end at once,
and a delivery not yet inside its SES call hands itself back (see
:mod:`worker.processing.send_request`). A delivery still stuck when the shutdown timeout runs out
(a slow STS or ledger call, or an SES call) is abandoned with the process. Then
:meth:`ClaimsHeld.release_unsent` gives back the claims of those whose SES call has not
begun, and they never begin it; only a claim whose send may be under way is left, for the
delivery that takes it over to settle from SES's events.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from worker.config.logs import get_logger
from worker.ledger import Ledger, LedgerKey, LedgerUnavailable

__all__ = ["ClaimLost", "ClaimsHeld", "HeldClaim"]

log = get_logger()


class ClaimLost(Exception):
    """The delivery no longer holds its claim: it must not send."""


@dataclass(eq=False)
class HeldClaim:
    """One delivery's claim, from just before it is asked for until its outcome is stored."""

    ledger: Ledger = field(repr=False)
    key: LedgerKey
    owner: str
    #: Its SES call has begun: SES may accept the email, so the claim must stay.
    sending: bool = False
    #: Given back by :meth:`ClaimsHeld.release_unsent`: the delivery must not send.
    released: bool = False

    def release(self) -> bool:
        """Give the claim back in the ledger; False if the ledger could not be reached (the
        claim then expires by itself, and until then redeliveries wait)."""
        try:
            self.ledger.release(self.key, owner=self.owner)
        except LedgerUnavailable as error:
            log.warning("could not release the claim", error=str(error)[:300])
            return False
        return True


class ClaimsHeld:
    """Every :class:`HeldClaim` of this process; safe for many threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[HeldClaim] = set()

    def hold(self, ledger: Ledger, key: LedgerKey, owner: str) -> HeldClaim:
        """Track a claim about to be asked for (so one still being written is covered)."""
        held = HeldClaim(ledger, key, owner)
        with self._lock:
            self._held.add(held)
        return held

    def drop(self, held: HeldClaim) -> None:
        """Stop tracking ``held``: its outcome is stored, or it was never granted."""
        with self._lock:
            self._held.discard(held)

    def start_send(self, held: HeldClaim) -> bool:
        """Mark ``held`` as sending, unless it was given back already (then False: don't)."""
        with self._lock:
            if held.released:
                return False
            held.sending = True
            return True

    def release_unsent(self) -> int:
        """Give back every claim whose SES call has not begun; return how many.

        For a worker about to exit with deliveries unfinished; each release is one quick
        ledger write, and one that fails leaves that claim to expire.
        """
        with self._lock:
            unsent = [held for held in self._held if not held.sending]
            for held in unsent:
                held.released = True
                self._held.discard(held)
        return sum(held.release() for held in unsent)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
