"""The C allocator told to give freed memory back, for a process that handles attachments.

Attachments pass through the worker in buffers of tens of megabytes, made and freed by many
threads. glibc's malloc gives threads that allocate at the same time arenas of their own (up
to eight per core), and once a large buffer has been freed it raises the size above which a
buffer gets a mapping of its own; so freed attachment buffers stay in the threads' arenas, and
the process's resident memory climbs well past what it holds. With 32 sends of 10 MB
attachments and EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES at 256 MiB, the worker's peak was
396-449 MiB without this and 276 MiB with it (tests/reliability/test_attachment_memory.py).

:func:`tune_allocator` caps the arenas at two and maps every buffer of 1 MiB or more on its
own, returned to the system when freed. A setting given in the environment
(``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) is left as given; without glibc, nothing
changes.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["tune_allocator"]

# glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_SETTINGS = (
    ("MALLOC_ARENA_MAX", _M_ARENA_MAX, 2),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, 1024 * 1024),
)


def tune_allocator() -> list[str]:
    """Apply the settings above that the environment does not give; the names applied."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return []  # not glibc
    applied = []
    for variable, parameter, value in _SETTINGS:
        if variable not in os.environ and mallopt(parameter, value) == 1:
            applied.append(variable)
    return applied
