"""Session-wide local servers and the environment every test runs in.

Import-time work below must happen before anything imports google.auth's metadata module:
``google.auth.compute_engine._metadata`` reads ``GCE_METADATA_HOST`` into a module global
when imported (``GCE_METADATA_IP``, used by ``ping``, is read per call). So the metadata
stand-in gets its port, and the environment is scrubbed, first.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from tests.support.ports import free_port

_METADATA_PORT = free_port()
_METADATA_HOST = f"127.0.0.1:{_METADATA_PORT}"


def _isolate_environment() -> None:
    # No static AWS keys, profiles or ambient role config may reach code under test.
    for name in list(os.environ):
        if name.startswith(
            ("AWS_", "PUBSUB_", "STORAGE_EMULATOR", "FIRESTORE_EMULATOR_HOST", "GCE_METADATA")
        ):
            del os.environ[name]
    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_API_USE_CLIENT_CERTIFICATE",
        "GOOGLE_API_USE_MTLS_ENDPOINT",
        "NO_GCE_CHECK",
        "MOTO_ACCOUNT_ID",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        # botocore must never probe the EC2 instance metadata address (not loopback).
        AWS_EC2_METADATA_DISABLED="true",
        # Safety net: an AWS client that a fixture did not point at moto hits a closed
        # loopback port instead of the internet. aws_env/fault_proxy override per service.
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        # An empty gcloud config, so google.auth.default() never finds a developer's ADC.
        CLOUDSDK_CONFIG=tempfile.mkdtemp(prefix="gcloud-config-"),
        GOOGLE_CLOUD_PROJECT="test-project",
        GCE_METADATA_HOST=_METADATA_HOST,
        GCE_METADATA_IP=_METADATA_HOST,
    )


_isolate_environment()

# Only now may google.auth be imported (the support modules import it).
import pytest  # noqa: E402
import structlog  # noqa: E402

from bench.ses_quota import SesQuota  # noqa: E402
from bench.ses_standin import SesStandIn  # noqa: E402
from tests.support.clock import ManualClock  # noqa: E402
from tests.support.fault_proxy import FaultProxy  # noqa: E402
from tests.support.firestore_emulator import FirestoreEmulator  # noqa: E402
from tests.support.gcs_emulator import GcsEmulator  # noqa: E402
from tests.support.metadata_server import MetadataServer  # noqa: E402
from tests.support.moto_server import DEFAULT_REGION, MotoServer  # noqa: E402
from tests.support.process import group_members  # noqa: E402
from tests.support.pubsub_emulator import PubSubEmulator  # noqa: E402

_METADATA = MetadataServer(port=_METADATA_PORT).start()

# Belt and braces: if a plugin imported the metadata module before us, re-point it.
if "google.auth.compute_engine._metadata" in sys.modules:
    _metadata_module: Any = sys.modules["google.auth.compute_engine._metadata"]
    _metadata_module._GCE_METADATA_HOST = _METADATA_HOST

DEFAULT_SENDER_DOMAIN = "example.com"


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Undo a command's configure_logging after each test. It turns on caching of loggers on
    first use, and a module's logger first used inside another test's ``capture_logs`` would
    then keep that capture's processors, and log past every later test's capture."""
    yield
    structlog.reset_defaults()


# -- Google metadata server ----------------------------------------------------------


@pytest.fixture(scope="session")
def metadata_server() -> MetadataServer:
    """The one metadata stand-in the environment points at (GCE_METADATA_HOST/IP)."""
    return _METADATA


@pytest.fixture
def clean_metadata(metadata_server: MetadataServer) -> Iterator[MetadataServer]:
    """The metadata stand-in, running, with an empty request log and no faults."""
    metadata_server.start()  # a no-op unless an earlier test stopped it
    metadata_server.reset()
    yield metadata_server
    metadata_server.start()
    metadata_server.reset()


# -- AWS (moto) ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Fresh moto state, ``example.com`` verified in eu-west-2, STS/SES v2 env -> moto."""
    moto.reset()
    moto.verify_email_identity(DEFAULT_SENDER_DOMAIN, DEFAULT_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", moto.endpoint)
    return moto


@pytest.fixture
def fault_proxy(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """Like ``aws_env``, but STS/SES v2 go through a fault-injecting proxy to moto."""
    with FaultProxy(aws_env.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", proxy.endpoint)
        yield proxy


@pytest.fixture
def ses_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandIn]:
    """The SES stand-in enforcing a quota (bench/ses_quota.py: 1,000 recipients per second,
    no daily cap, until the test changes them), with STS/SES v2 env -> it."""
    with SesStandIn(quota=SesQuota(1000, day_clock=ManualClock(1_800_000_000.0))) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", standin.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", standin.endpoint)
        yield standin


# -- Google Cloud Storage ------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
    with GcsEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcs_env(gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint)
    return gcs


# -- Pub/Sub -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    emulator = PubSubEmulator().start()
    try:
        yield emulator
    finally:
        group = emulator.pid_group
        emulator.close()
        if group is not None and group_members(group):
            raise RuntimeError(f"Pub/Sub emulator processes left behind: {group_members(group)}")


@pytest.fixture
def pubsub_env(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    if not pubsub_emulator.running:  # an outage test may have left it stopped
        pubsub_emulator.start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", pubsub_emulator.project_id)
    return pubsub_emulator


# -- Firestore -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator().start()
    try:
        yield emulator
    finally:
        group = emulator.pid_group
        emulator.close()
        if group is not None and group_members(group):
            raise RuntimeError(f"Firestore emulator processes left behind: {group_members(group)}")


@pytest.fixture
def firestore_env(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> FirestoreEmulator:
    """The emulator, running and empty, with FIRESTORE_EMULATOR_HOST pointing at it."""
    if not firestore_emulator.running:  # an outage test may have left it stopped
        firestore_emulator.start()
    firestore_emulator.clear()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", firestore_emulator.project_id)
    return firestore_emulator


# -- Markers ---------------------------------------------------------------------------

#: Fixtures that start a real local server (emulator, moto, GCS) or build an environment.
_INTEGRATION_FIXTURES = frozenset(
    {
        "moto",
        "gcs",
        "pubsub_emulator",
        "firestore_emulator",
        "metadata_server",
        "image_venv",
        "ses_standin",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test exactly one of the markers ``unit``, ``integration``, ``reliability``.

    ``reliability`` is tests/reliability/; ``integration`` is any other test that uses a server
    or environment fixture, directly or through another fixture, or whose module says so
    (tests that start processes themselves); the rest are ``unit``, run by ``make test-fast``.
    """
    for item in items:
        own = {mark.name for mark in item.iter_markers()}
        if "reliability" in own or "tests/reliability/" in item.nodeid:
            marker = "reliability"
        elif "integration" in own or _INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            marker = "integration"
        else:
            marker = "unit"
        if marker not in own:
            item.add_marker(marker)
