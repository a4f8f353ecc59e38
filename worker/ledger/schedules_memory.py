"""Schedule records in memory, for the memory ledger (:mod:`worker.ledger.schedules`).

The range reads look at every record: the memory ledger is for tests and demos."""

from __future__ import annotations

from worker.ledger.memory_ledger import _Table
from worker.ledger.model import LedgerKey
from worker.ledger.schedules import Schedule, ScheduleRecords, ScheduleState

__all__ = ["MemorySchedules"]


class MemorySchedules(_Table[LedgerKey, Schedule], ScheduleRecords):
    """Schedule records in a dictionary (used under the memory ledger's lock)."""

    def due(self, before: float, limit: int) -> list[LedgerKey]:
        due = [s for s, _ in self.rows.values() if _pending(s) and s.due_at <= before]
        return [s.key for s in sorted(due, key=lambda s: s.due_at)[:limit]]

    def of_service(self, service_id: str, before: float | None, limit: int) -> list[Schedule]:
        found = [
            s
            for s, _ in self.rows.values()
            if _pending(s)
            and s.key.service_id == service_id
            and (before is None or s.due_at <= before)
        ]
        return sorted(found, key=lambda s: s.due_at)[:limit]

    def sweep(self, now: float) -> int:
        gone = [key for key, (s, _) in self.rows.items() if s.expire_at < now]
        for key in gone:
            del self.rows[key]
        return len(gone)


def _pending(schedule: Schedule) -> bool:
    return schedule.state is ScheduleState.SCHEDULED
