"""Session handling: the sending library's public entry point, ``worker.session``.

Services import :class:`Session` (and :class:`BaseSession`, for their own implementations)
from here, as the session API reference documents. The code lives in
:mod:`worker.sending.ses_session`; this module re-exports its public names, the very same objects.
"""

from worker.sending.ses_session import (
    DEFAULT_AWS_REGION,
    DEFAULT_ROLE_SESSION_NAME,
    BaseSession,
    Session,
)

__all__ = ["DEFAULT_AWS_REGION", "DEFAULT_ROLE_SESSION_NAME", "BaseSession", "Session"]
