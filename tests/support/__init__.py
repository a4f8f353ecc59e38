"""Real local stand-ins for the cloud services email-worker talks to.

Every server here listens on a free 127.0.0.1 port chosen at start; nothing reaches the
internet. The pytest fixtures that own their lifetimes live in ``tests/conftest.py``.
"""
