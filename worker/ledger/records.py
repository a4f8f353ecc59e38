"""The storage primitives the ledger's protocol is written on (:mod:`worker.ledger.base`).

A backend keeps each kind of record (a request's :class:`~worker.ledger.shared.Entry`, a
:class:`~worker.ledger.pauses.Pause`) in a :class:`Records`: a keyed store that can insert a
record unless its key has one, read a record with an opaque version, and write or delete a
record only while it still has the version it was read with. Those four are all the protocol
needs: a write that finds the record changed fails, and the protocol reads and decides again.
"""

from __future__ import annotations

import abc
from typing import Generic, TypeVar

__all__ = ["Records", "Version"]

#: A backend's mark of a record as read (a row's values, an update time, a counter).
Version = object

K = TypeVar("K")
R = TypeVar("R")


class Records(abc.ABC, Generic[K, R]):
    """Records of one kind by key. Called only inside a ledger operation (see
    :meth:`worker.ledger.base.Ledger._writing`), which maps the store's errors."""

    @abc.abstractmethod
    def insert_if_absent(self, key: K, record: R) -> bool:
        """Store ``record`` if ``key`` has none, not even an expired one; True if stored."""

    @abc.abstractmethod
    def read(self, key: K) -> tuple[R, Version] | None:
        """The record of ``key`` as stored, expired or not, and its version."""

    @abc.abstractmethod
    def write_if_version(self, key: K, record: R, version: Version) -> bool:
        """Replace the record of ``key`` if it still has ``version``; True if replaced."""

    @abc.abstractmethod
    def delete_if_version(self, key: K, version: Version) -> bool:
        """Delete the record of ``key`` if it still has ``version``; True if deleted."""
