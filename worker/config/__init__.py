"""Configuration of the process: its settings from the environment and its structured logs.

The layer owns :class:`Settings` (every ``EMAIL_WORKER_*`` variable, parsed and checked
together, invalid ones reported at once in one :class:`SettingsError`) and the JSON log
format of Google Cloud Logging (:func:`configure_logging`, :func:`get_logger`), and the push
budget (:mod:`worker.config.budget`: how long one delivery may take). Both are read
once at the entry point and passed down, so every layer of the worker may use them; they
import nothing else of the worker.
"""

from __future__ import annotations

from worker.config.logs import OncePerInterval, configure_logging, get_logger
from worker.config.settings import Settings, SettingsError

__all__ = ["OncePerInterval", "Settings", "SettingsError", "configure_logging", "get_logger"]
