"""Operators' commands of ``email-worker``: ``send``, ``dlq ...``, ``ledger``, ``status``,
``setup``, and ``pause``/``resume``/``paused``.

Each module defines one click command (or group); ``worker.app.cli`` registers them on ``main``.
They import the Pub/Sub libraries only when they run, so ``--help`` stays fast.
"""
