"""The per-service session cache."""

from __future__ import annotations

import pytest

from tests.support.clock import ManualClock
from worker.sending.errors import ConfigurationError
from worker.sending.ses_session import BaseSession
from worker.sending.session_cache import SessionCache
from worker.sending.testing import RecordingSession


def test_a_session_is_reused_within_its_ttl() -> None:
    made: list[str] = []

    def make(service_id: str) -> RecordingSession:
        made.append(service_id)
        return RecordingSession()

    clock = ManualClock()
    cache = SessionCache(make, ttl_s=60, clock=clock)
    first = cache.get("billing")
    clock.now = 59
    assert cache.get("billing") is first
    assert made == ["billing"]


def test_a_session_is_rebuilt_from_configuration_after_its_ttl() -> None:
    clock = ManualClock()
    cache = SessionCache(lambda _: RecordingSession(), ttl_s=60, clock=clock)
    first = cache.get("billing")
    clock.now = 61
    assert cache.get("billing") is not first


def test_each_service_has_its_own_session() -> None:
    cache = SessionCache(lambda _: RecordingSession(), ttl_s=60)
    assert cache.get("a") is not cache.get("b")


def test_a_failed_creation_is_not_cached() -> None:
    calls = []

    def factory(service_id: str) -> BaseSession:
        calls.append(service_id)
        if len(calls) == 1:
            raise ConfigurationError("missing")
        return RecordingSession()

    cache = SessionCache(factory, ttl_s=60)
    with pytest.raises(ConfigurationError):
        cache.get("billing")
    assert isinstance(cache.get("billing"), RecordingSession)
