"""The C allocator tuned for large attachment buffers (glibc's mallopt)."""

from __future__ import annotations

import pytest

from worker.app.memory import tune_allocator


def test_on_glibc_the_arenas_are_capped_and_large_buffers_mapped_on_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert tune_allocator() == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"]


def test_a_setting_the_environment_gives_is_left_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert tune_allocator() == ["MALLOC_MMAP_THRESHOLD_"]
