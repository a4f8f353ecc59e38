"""Settings the ledger tests share."""

from __future__ import annotations

LEASE_S = 30.0
RETENTION_S = 8 * 24 * 3600.0
TAKEOVER_WAIT_S = 60.0
# Any fixed moment will do; this one is in 2027.
START = 1_800_000_000.0
