"""Fixtures of the console's tests: a per-service stack and IAP's keys on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.iap_keys import IapKeys
from tests.support.worker_stack import Stack, make_tenant_stack


@pytest.fixture
def stack(pubsub_env: Any, aws_env: Any, tmp_path: Path) -> Stack:
    return make_tenant_stack(pubsub_env, tmp_path, aws_env.endpoint)


@pytest.fixture(scope="session")
def iap_keys() -> Iterator[IapKeys]:
    with IapKeys() as keys:
        yield keys
