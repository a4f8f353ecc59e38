"""Pausing and resuming sending: the pause records, and push subscriptions turned into pull.

A pause is a record in the request ledger (:class:`~worker.ledger.Pause`), which every worker
reads (:mod:`worker.processing.pause_watch`): a pull worker stops leasing from the paused
subscriptions. A push subscription would go on pushing, and Pub/Sub counts every refused push
as a delivery attempt and dead-letters after the last, so a pause also empties the push
configuration of each affected push subscription (ModifyPushConfig), which makes it a pull
subscription nobody pulls: the messages wait in it. The configuration it had is kept in the
pause record, and put back on resume.

Order matters. ``pause`` writes the record (with the configurations) before it changes any
subscription, so that a failure part-way leaves them safe, and running it again finishes.
``resume`` removes the record, waits until every worker has seen that, and only then makes
the subscriptions push again: a push to a worker that still held the service paused would be
refused, and Pub/Sub counts that as a delivery attempt. If a subscription cannot be made to
push again, the record is written back, and running ``resume`` again finishes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from google.cloud import pubsub_v1

from worker.client.pubsub_rpc import bounded
from worker.config.settings import Settings
from worker.ledger import ALL_SERVICES, Ledger, Pause

__all__ = ["Resumed", "affected_subscriptions", "pause", "resume"]


def _path(settings: Settings, name: str) -> str:
    return name if "/" in name else f"projects/{settings.require_project()}/subscriptions/{name}"


def affected_subscriptions(settings: Settings, scope: str) -> list[str]:
    """The subscriptions (full paths) a pause of ``scope`` holds back.

    A service: its own subscription. Every service: each allowed service's subscription and
    the replay subscription (per-service tenancy), or the one shared subscription.
    """
    if not settings.services.per_service:
        return [_path(settings, settings.topics.subscription)]
    if scope != ALL_SERVICES:
        return [_path(settings, settings.topics.service_subscription_for(scope))]
    services = sorted(settings.services.allowed)
    names = [settings.topics.service_subscription_for(s) for s in services]
    return [_path(settings, name) for name in [*names, settings.topics.replay_subscription]]


def pause(
    ledger: Ledger,
    subscriber: Any,
    settings: Settings,
    *,
    scope: str,
    by: str,
    reason: str | None,
    timeout_s: float,
) -> tuple[Pause, list[str]]:
    """Pause ``scope``; return the stored record and the push subscriptions switched to pull.

    Pausing a paused scope again keeps its record, and switches to pull any of its
    subscriptions that push again (after a ``terraform apply``, say).
    """
    pushing = {}
    for subscription in affected_subscriptions(settings, scope):
        found = subscriber.get_subscription(
            request={"subscription": subscription}, **bounded(timeout_s)
        )
        if found.push_config.push_endpoint:
            config = found.push_config
            pushing[subscription] = pubsub_v1.types.PushConfig.to_json(config, indent=None)
    new = Pause(scope, dt.datetime.now(dt.UTC), by, reason, saved_push_configs=pushing)
    stored = ledger.add_pause(new)  # before any change: the configurations are safe first
    for subscription in pushing:
        _set_push_config(subscriber, subscription, {}, timeout_s)
    return stored, sorted(pushing)


@dataclass(frozen=True)
class Resumed:
    """What ``resume`` did: the record it removed, the subscriptions it made push again, and
    those it left pull for another pause still in force, as (subscription, that scope)."""

    pause: Pause | None
    restored: list[str]
    handed_over: list[tuple[str, str]]


def resume(
    ledger: Ledger,
    subscriber: Any,
    settings: Settings,
    *,
    scope: str,
    timeout_s: float,
    sleep: Callable[[float], object] = time.sleep,
) -> Resumed:
    """Resume ``scope``: remove its pause, then put back the push configurations it saved.

    Between the two it waits ``EMAIL_WORKER_PAUSE_POLL_S`` and a second, for every worker to
    have read the pauses since: a push that reached a worker still holding the service
    paused would be refused, and cost its request a delivery attempt. When a configuration
    cannot be put back, the pause is recorded again (pushes stay off) and the error raised:
    running ``resume`` again finishes it.

    A subscription that another pause in force also holds back (a service's, under a pause of
    every service, or the other way round) stays pull: its configuration moves to that
    pause's record, which puts it back when it ends.
    """
    pauses = ledger.pauses()
    stored = next((p for p in pauses if p.scope == scope), None)
    if stored is None:
        return Resumed(None, [], [])
    others = [p for p in pauses if p.scope != scope]
    to_restore, handed_over = [], []
    for subscription, config in sorted(stored.saved_push_configs.items()):
        heir = _still_holding(settings, others, subscription)
        if heir is None:
            to_restore.append((subscription, config))
            continue
        ledger.add_pause(replace(heir, saved_push_configs={subscription: config}))
        handed_over.append((subscription, heir.scope))
    ledger.remove_pause(scope)
    if to_restore:
        sleep(settings.ledger.pause_poll_s + 1.0)
    try:
        for subscription, config in to_restore:
            push_config = pubsub_v1.types.PushConfig.from_json(config)
            _set_push_config(subscriber, subscription, push_config, timeout_s)
    except Exception:
        ledger.add_pause(stored)
        raise
    return Resumed(stored, [subscription for subscription, _ in to_restore], handed_over)


def _still_holding(settings: Settings, pauses: Iterable[Pause], subscription: str) -> Pause | None:
    return next(
        (p for p in pauses if subscription in affected_subscriptions(settings, p.scope)), None
    )


def _set_push_config(subscriber: Any, subscription: str, config: Any, timeout_s: float) -> None:
    subscriber.modify_push_config(
        request={"subscription": subscription, "push_config": config}, **bounded(timeout_s)
    )
