"""The services page's charts, as geometry for inline SVG drawn by the template.

Server-side and without script: the template (``services.html``) turns each chart into an
``<svg role="img">`` with a ``<title>`` and ``<desc>`` that say what it shows and its totals,
and a ``<title>`` per bar; the page repeats every number in tables, for screen readers and
anyone who wants the figures. Colours come from the console's style sheet (``bar-*``
classes), so the Content-Security-Policy needs no inline style.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_chart", "rate_chart", "with_charts"]

WIDTH = 720
HEIGHT = 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 8, 12, 34
#: (field, what a bar of it is, CSS class) of each chart's series.
_COUNTS = (
    ("sent", "sent", "bar-sent"),
    ("rejected", "rejected", "bar-rejected"),
    ("failed", "failed", "bar-failed"),
)
_RATES = (
    ("bounce_rate_percent", "bounce rate %", "bar-bounce"),
    ("complaint_rate_percent", "complaint rate %", "bar-complaint"),
)


def with_charts(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (the services page's) with each service's four charts added."""
    for service in document["services"]:
        name = service["service_id"]
        hourly, daily = service["hourly"], service["daily"]
        service["charts"] = [
            count_chart(f"{name}-hourly-counts", "per hour, last 24 hours", hourly),
            rate_chart(f"{name}-hourly-rates", "per hour, last 24 hours", hourly),
            count_chart(f"{name}-daily-counts", "per day, last 7 days", daily),
            rate_chart(f"{name}-daily-rates", "per day, last 7 days", daily),
        ]
    return document


def count_chart(chart_id: str, span: str, periods: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests sent, rejected and failed in each of ``periods``, stacked."""
    totals = {field: sum(p[field] for p in periods) for field, _, _ in _COUNTS}
    summary = ", ".join(f"{totals[field]} {word}" for field, word, _ in _COUNTS)
    return _chart(
        chart_id,
        f"Requests {span}",
        f"Stacked bars of requests sent, rejected and failed; in all {summary}.",
        periods,
        _COUNTS,
        stacked=True,
    )


def rate_chart(chart_id: str, span: str, periods: list[dict[str, Any]]) -> dict[str, Any]:
    """Bounce and complaint rates in each of ``periods``, side by side."""
    recipients = sum(p["recipients"] for p in periods)
    bounced = sum(p["bounced"] for p in periods)
    complained = sum(p["complained"] for p in periods)
    return _chart(
        chart_id,
        f"Bounce and complaint rates {span}",
        f"Bars of the hard bounce and complaint rates in percent of recipients sent to; in "
        f"all {bounced} bounced and {complained} complained of {recipients} recipients.",
        periods,
        _RATES,
        stacked=False,
    )


def _chart(
    chart_id: str,
    title: str,
    description: str,
    periods: list[dict[str, Any]],
    series: tuple[tuple[str, str, str], ...],
    *,
    stacked: bool,
) -> dict[str, Any]:
    values = [[float(p[field] or 0) for field, _, _ in series] for p in periods]
    peak = max((sum(v) if stacked else max(v) for v in values), default=0.0)
    top = _nice(peak)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(periods))
    bars = []
    for index, (period, row) in enumerate(zip(periods, values, strict=True)):
        bars.extend(_bars(index, period["label"], row, series, slot, plot_h, top, stacked))
    every = max(1, len(periods) // 8)
    return {
        "id": chart_id,
        "title": title,
        "description": description,
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "ticks": [
            {"y": round(_TOP + plot_h - plot_h * f, 1), "text": _number(top * f)}
            for f in (0.0, 0.5, 1.0)
        ],
        "labels": [
            {"x": round(_LEFT + slot * (i + 0.5), 1), "text": p["label"]}
            for i, p in enumerate(periods)
            if (len(periods) - 1 - i) % every == 0
        ],
        "left": _LEFT,
        "right": WIDTH - _RIGHT,
        "baseline": _TOP + plot_h,
        "legend": [{"name": word, "class": css} for _, word, css in series],
    }


def _bars(
    index: int,
    label: str,
    row: list[float],
    series: tuple[tuple[str, str, str], ...],
    slot: float,
    plot_h: float,
    top: float,
    stacked: bool,
) -> list[dict[str, Any]]:
    """The rectangles of one period: stacked from the baseline, or side by side."""
    width = slot * 0.7 / (1 if stacked else len(series))
    x0 = _LEFT + slot * index + slot * 0.15
    bars, below = [], 0.0
    for position, (value, (_, word, css)) in enumerate(zip(row, series, strict=True)):
        height = plot_h * value / top
        x = x0 if stacked else x0 + width * position
        y = _TOP + plot_h - height - (below if stacked else 0.0)
        if stacked:
            below += height
        bars.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "width": round(width, 1),
                "height": round(height, 1),
                "class": css,
                "title": f"{label}: {_number(value)} {word}",
            }
        )
    return bars


def _nice(peak: float) -> float:
    """A round top for the scale, at least ``peak`` (1 for an empty chart)."""
    if peak <= 0:
        return 1.0
    step = 10 ** (len(str(int(peak))) - 1) if peak >= 1 else 0.1
    while step * 10 < peak:
        step *= 10
    for multiple in (1, 2, 5, 10):
        if step * multiple >= peak:
            return float(step * multiple)
    return float(step * 10)


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))
