"""The services page's document: each service's health at a glance.

For every service the console's settings allow (``EMAIL_WORKER_ALLOWED_SERVICES``): whether
it is paused, by whom and why (the operators' pause records, which the reputation breaker
writes too), its weight and share of the weights, its ``max_per_day`` and what it sent in
that cap's window (from its configuration document), and what became of its email over the
last 24 hours (hourly) and 7 days (daily): requests sent, rejected and failed, and the bounce
and complaint rates (hard-bounced and complaining recipients per recipient sent to).

The numbers are the ledger's outcome counters (:mod:`worker.ledger.service_counts`), read by
key, never a scan. The console keeps the totals of the week's final hours
(:class:`ServiceWeeks`), so a view reads again only the hours that can still change: the
current hour's shards, and for the first minutes of an hour the previous one's too. The first
view after the console starts reads each service's whole week,
:data:`~worker.ledger.service_counts.WEEK_HOURS` hours of shards.
The same document is the page's JSON twin and, with the charts
:func:`worker.console.charts.with_charts` adds, what its template renders.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from worker.console.sources import Sources
from worker.formats.result import format_timestamp
from worker.ledger import ALL_SERVICES, Ledger, Pause
from worker.ledger.final_hours import DEFAULT_MAX_SERVICES, FinalHours, settle_margin_s
from worker.ledger.send_counts import HOUR_S, WINDOW_HOURS, hour_of
from worker.ledger.service_count_stores import service_counts_of
from worker.ledger.service_counter import FLUSH_INTERVAL_S
from worker.ledger.service_counts import KINDS, WEEK_HOURS, HourCounts
from worker.sending.errors import EmailError
from worker.sending.service_config import ServiceConfig, load_service_config

__all__ = ["ServiceWeeks", "services_document", "totals"]

# Services read at once: configuration documents and counters, each a round trip.
_READERS = 8


class ServiceWeeks:
    """Each service's outcome counters of the last week, as the page reads them: the totals of
    final hours kept (:mod:`worker.ledger.final_hours`, for at most ``max_services``), the
    hours that can still change read at each view. One per console process."""

    def __init__(self, ledger: Ledger, *, max_services: int = DEFAULT_MAX_SERVICES) -> None:
        self._records = service_counts_of(ledger)
        settle_s = settle_margin_s(FLUSH_INTERVAL_S)
        self.final = FinalHours[HourCounts](settle_s, max_services=max_services)

    def read(self, service_id: str, now: float) -> dict[int, HourCounts]:
        """``service_id``'s counters of the week ending at ``now``, by hour."""
        last = hour_of(now)
        week = range(last - WEEK_HOURS + 1, last + 1)
        return self.final.read(service_id, week, now, self._records.read)


def services_document(
    sources: Sources, now: float | None = None, weeks: ServiceWeeks | None = None
) -> dict[str, Any]:
    """Everything the services page shows, for the allowed services in name order (their
    counters through ``weeks``, a fresh one if None)."""
    now = time.time() if now is None else now
    read = (weeks or ServiceWeeks(sources.ledger)).read
    service_ids = sorted(sources.settings.services.allowed)
    pauses = {pause.scope: pause for pause in sources.ledger.pauses()}
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        configs = list(pool.map(lambda s: _config(sources, s), service_ids))
        counts = list(pool.map(lambda s: read(s, now), service_ids))
    weights = sum(c.weight for c in configs if isinstance(c, ServiceConfig))
    services = [
        _service(service_id, config, pauses, counted, weights, now)
        for service_id, config, counted in zip(service_ids, configs, counts, strict=True)
    ]
    return {
        "generated_at": format_timestamp(dt.datetime.fromtimestamp(now, dt.UTC)),
        "count": len(services),
        "paused": sum(1 for s in services if s["paused"]),
        "services": services,
    }


def _config(sources: Sources, service_id: str) -> ServiceConfig | str:
    """The service's configuration, or why it cannot be read."""
    services = sources.settings.services
    try:
        return load_service_config(
            service_id, environment=services.config_environment, template=services.config_url
        )
    except EmailError as error:
        return error.message


def _service(
    service_id: str,
    config: ServiceConfig | str,
    pauses: dict[str, Pause],
    counted: dict[int, HourCounts],
    weights: float,
    now: float,
) -> dict[str, Any]:
    pause = pauses.get(service_id) or pauses.get(ALL_SERVICES)
    last = hour_of(now)
    hourly = [_period(counted, hour, 1) for hour in range(last - 23, last + 1)]
    daily = [_period(counted, first, 24) for first in range(last - WEEK_HOURS + 1, last, 24)]
    known = config if isinstance(config, ServiceConfig) else None
    return {
        "service_id": service_id,
        "paused": pause is not None,
        "pause": None if pause is None else _pause(pause),
        "config_error": None if known else config,
        "weight": known.weight if known else None,
        "share_percent": _share(config, weights),
        "max_per_day": known.max_per_day if known else None,
        # Recipients sent in max_per_day's window (worker.processing.daily_cap).
        "sent_in_cap_window": sum(
            counted.get(hour, {}).get("recipients", 0)
            for hour in range(last - WINDOW_HOURS + 1, last + 1)
        ),
        "last_24_hours": totals(hourly),
        "last_7_days": totals(daily),
        "hourly": hourly,
        "daily": daily,
    }


def _pause(pause: Pause) -> dict[str, Any]:
    return {
        "scope": pause.scope,
        "by": pause.by,
        "reason": pause.reason,
        "since": format_timestamp(pause.since),
        "all_services": pause.everything,
    }


def _share(config: ServiceConfig | str, weights: float) -> float | None:
    if not isinstance(config, ServiceConfig) or weights <= 0:
        return None
    return round(100.0 * config.weight / weights, 1)


def _period(counted: dict[int, HourCounts], first: int, hours: int) -> dict[str, Any]:
    """The counts of ``hours`` hours from ``first``, with their rates."""
    summed = {kind: 0 for kind in KINDS}
    for hour in range(first, first + hours):
        for kind, count in counted.get(hour, {}).items():
            summed[kind] = summed.get(kind, 0) + count
    start = dt.datetime.fromtimestamp(first * HOUR_S, dt.UTC)
    label = start.strftime("%H:00") if hours == 1 else start.strftime("%d %b %H:00")
    return {"start": format_timestamp(start), "label": label, **summed, **_rates(summed)}


def totals(periods: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of ``periods`` together, with their rates."""
    summed = {kind: sum(int(p[kind]) for p in periods) for kind in KINDS}
    return {**summed, **_rates(summed)}


def _rates(counts: dict[str, int]) -> dict[str, float | None]:
    """Bounce and complaint rates in percent of the recipients sent to (None: none were)."""
    recipients = counts.get("recipients", 0)
    if not recipients:
        return {"bounce_rate_percent": None, "complaint_rate_percent": None}
    return {
        "bounce_rate_percent": round(100.0 * counts.get("bounced", 0) / recipients, 2),
        "complaint_rate_percent": round(100.0 * counts.get("complained", 0) / recipients, 2),
    }
