"""The worker's settings: read once from the environment at the entry point, then passed down.

Every variable has the ``EMAIL_WORKER_`` prefix except the platform's own
(``GOOGLE_CLOUD_PROJECT``, ``PORT``). Invalid values are collected and reported together.
"""

from __future__ import annotations

import difflib
import re
import string
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from worker.config.names import colliding_name

__all__ = ["SERVICE_ID_RE", "TENANCIES", "Settings", "SettingsError", "unknown_setting_names"]

#: A service id, in settings and in requests (`worker.formats.request` uses it too).
SERVICE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: EMAIL_WORKER_TENANCY's values (docs/security.md).
TENANCIES = ("per-service", "shared")
#: Google's public certificates for the ID tokens Pub/Sub push attaches (PEM by key id).
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The client library renews a lease after at most 90% of the deadline: 30 s leaves 3 s for a
# renewal to reach Pub/Sub from a starved process, and 10 s (Pub/Sub's own floor) only 1 s.
MIN_ACK_DEADLINE_S = 30
_LEDGER_URL = re.compile(r"none|firestore(?:://[a-z(][a-z0-9()-]+)?|sqlite://(?:/\S+)?")
# Pub/Sub's subscription name rule, optionally inside a full resource path.
_SUBSCRIPTION_RE = re.compile(r"(?:projects/[^/\s]+/subscriptions/)?[A-Za-z][\w.~+%-]{2,254}")
_NO_PROJECT = "GOOGLE_CLOUD_PROJECT must name the Google Cloud project"
#: The prefix of the worker's own variables: one that is no setting is most likely a typo.
_PREFIX = "EMAIL_WORKER_"
# What a service configuration URL may hold (worker/sending/service_config.py reads it).
_CONFIG_URL_SCHEMES = ("file", "gs")
_CONFIG_URL_PLACEHOLDERS = frozenset({"environment", "service_id"})


class SettingsError(Exception):
    """One or more settings are missing or invalid; the message lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = problems


def _env(name: str, default: Any = None, *, doc: str) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything the worker reads from its environment, typed and validated."""

    project_id: str | None = _env(
        "GOOGLE_CLOUD_PROJECT", doc="Google Cloud project of the Pub/Sub topics."
    )
    subscription: str = _env(
        "EMAIL_WORKER_SUBSCRIPTION", "email-requests-worker", doc="Subscription pulled from."
    )
    requests_topic: str = _env(
        "EMAIL_WORKER_REQUESTS_TOPIC", "email-requests", doc="Topic requests are published to."
    )
    results_topic: str = _env(
        "EMAIL_WORKER_RESULTS_TOPIC", "email-results", doc="Topic results are published to."
    )
    dead_letter_topic: str = _env(
        "EMAIL_WORKER_DEAD_LETTER_TOPIC",
        "email-requests-dead-letter",
        doc="Topic that requests which cannot succeed are forwarded to.",
    )
    dead_letter_subscription: str = _env(
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION",
        "email-requests-dead-letter-ops",
        doc="Operators' subscription on the dead-letter topic (used by the CLI).",
    )
    tenancy: str = _env(
        "EMAIL_WORKER_TENANCY",
        "per-service",
        doc="Who a request's service is: per-service (the topic it was published to, which "
        "only that service may publish to; see docs/security.md) or shared (the service_id "
        "in the request, trusted: any publisher to the one topic can send as any service).",
    )
    service_topic: str = _env(
        "EMAIL_WORKER_SERVICE_TOPIC",
        "email-requests-{service}",
        doc="per-service: each service's request topic ({service} is the service id).",
    )
    service_subscription: str = _env(
        "EMAIL_WORKER_SERVICE_SUBSCRIPTION",
        "email-requests-{service}-worker",
        doc="per-service: the worker's subscription on each service's topic.",
    )
    replay_topic: str = _env(
        "EMAIL_WORKER_REPLAY_TOPIC",
        "email-replays",
        doc="per-service: topic dlq replay publishes to; the worker sends a replay only if its "
        "request ledger holds the same request from the same service.",
    )
    replay_subscription: str = _env(
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
        "email-replays-worker",
        doc="per-service: the worker's subscription on the replay topic.",
    )
    default_service_id: str | None = _env(
        "EMAIL_WORKER_SERVICE_ID", doc="Service of requests that name none (shared tenancy)."
    )
    allowed_services: frozenset[str] = _env(
        "EMAIL_WORKER_ALLOWED_SERVICES",
        frozenset(),
        doc="Comma-separated services this worker sends for; others are rejected. A service "
        "whose topic or subscription would be one of the worker's own names (dead-letter, with "
        "the default names) is a settings problem (worker/config/names.py).",
    )
    environment: str = _env(
        "EMAIL_WORKER_ENVIRONMENT",
        "production",
        doc="Environment placeholder of the service configuration URL.",
    )
    service_config_url: str | None = _env(
        "EMAIL_WORKER_SERVICE_CONFIG_URL",
        doc="file:// or gs:// template of service configuration documents.",
    )
    session_ttl_s: float = _env(
        "EMAIL_WORKER_SESSION_TTL_S",
        300.0,
        doc="How long a service's session and configuration are reused before re-reading.",
    )
    send_max_attempts: int = _env(
        "EMAIL_WORKER_SEND_MAX_ATTEMPTS",
        4,
        doc="Send attempts per delivery for transient SES/STS failures.",
    )
    send_initial_backoff_s: float = _env(
        "EMAIL_WORKER_SEND_INITIAL_BACKOFF_S", 0.5, doc="First retry backoff."
    )
    send_max_backoff_s: float = _env(
        "EMAIL_WORKER_SEND_MAX_BACKOFF_S", 8.0, doc="Longest retry backoff."
    )
    send_deadline_s: float = _env(
        "EMAIL_WORKER_SEND_DEADLINE_S",
        30.0,
        doc="No retry starts after this long; keeps one attempt well inside the ack deadline.",
    )
    send_rate_per_s: float | None = _env(
        "EMAIL_WORKER_SEND_RATE_PER_S",
        doc="Most recipients per second this instance sends to SES (SES counts each "
        "recipient); sends wait their turn. Unset: no limit. Set it to the account's SES "
        "maximum send rate divided by the number of instances.",
    )
    ledger: str = _env(
        "EMAIL_WORKER_LEDGER",
        "sqlite:///email-worker-ledger.db",
        doc="Request ledger that makes each request send once: firestore (or "
        "firestore://DATABASE) for several instances, sqlite:///relative.db or "
        "sqlite:////absolute.db for one, none to turn it off.",
    )
    ledger_claim_s: float = _env(
        "EMAIL_WORKER_LEDGER_CLAIM_S",
        90.0,
        doc="How long a delivery's claim on a request lasts; a claim left by a crashed "
        "worker is taken over after this.",
    )
    ledger_retention_s: float = _env(
        "EMAIL_WORKER_LEDGER_RETENTION_S",
        691200.0,
        doc="How long the ledger keeps a request's record (default 8 days: Pub/Sub's 7-day "
        "retention plus a day for replays).",
    )
    ledger_takeover: str = _env(
        "EMAIL_WORKER_LEDGER_TAKEOVER",
        "resend",
        doc="When a claim expired during its SES call, so the send may or may not have "
        "happened: resend (at least once) or fail with outcome_unknown (at most once).",
    )
    send_event_wait_s: float = _env(
        "EMAIL_WORKER_SEND_EVENT_WAIT_S",
        120.0,
        doc="How long after a dead delivery's claim expired the request waits for SES's Send "
        "event before it is sent again (the events reader records it; SES, EventBridge and "
        "the reader's long poll take seconds). 0: no wait, for deployments without "
        "email-worker events.",
    )
    pause_poll_s: float = _env(
        "EMAIL_WORKER_PAUSE_POLL_S",
        5.0,
        doc="How often a worker reads the ledger's pauses (email-worker pause): how long after "
        "a pause or resume its pulling stops or starts again.",
    )
    max_delivery_attempts: int | None = _env(
        "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS",
        doc="Last delivery attempt; default: read from the subscription's dead-letter policy.",
    )
    max_messages: int = _env(
        "EMAIL_WORKER_MAX_MESSAGES",
        1000,
        doc="Flow control: messages held (leased) at once, waiting or being processed. Keep "
        "it well above EMAIL_WORKER_CONCURRENCY, so the stream is read promptly.",
    )
    ack_deadline_s: int = _env(
        "EMAIL_WORKER_ACK_DEADLINE_S",
        60,
        doc="Ack deadline of every held message, renewed before it runs out; also how soon "
        "the messages of a crashed worker are delivered again.",
    )
    max_bytes: int = _env(
        "EMAIL_WORKER_MAX_BYTES", 256 * 1024 * 1024, doc="Flow control: bytes held at once."
    )
    concurrency: int = _env(
        "EMAIL_WORKER_CONCURRENCY", 32, doc="Threads processing messages (SES calls block)."
    )
    publish_timeout_s: float = _env(
        "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
        30.0,
        doc="How long to wait for a result or dead letter to be confirmed.",
    )
    shutdown_timeout_s: float = _env(
        "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S",
        8.0,
        doc="Time to finish in-flight work on SIGTERM (Cloud Run allows 10 s).",
    )
    log_level: str = _env("EMAIL_WORKER_LOG_LEVEL", "INFO", doc="DEBUG, INFO, WARNING, ERROR.")
    port: int | None = _env("PORT", doc="HTTP port (push endpoint, health and metrics).")
    http_host: str = _env(
        "EMAIL_WORKER_HTTP_HOST",
        "0.0.0.0",  # noqa: S104 - Cloud Run routes to the container's interfaces
        doc="Address the HTTP server listens on (serve, and pull when PORT is set).",
    )
    push_auth: bool = _env(
        "EMAIL_WORKER_PUSH_AUTH",
        True,
        doc="on: every push must carry a Google-signed OIDC token. off: no check, for the "
        "emulator and local development only.",
    )
    push_audience: str | None = _env(
        "EMAIL_WORKER_PUSH_AUDIENCE",
        doc="Audience ('aud') the push subscription's OIDC token must have. With "
        "{subscription} in it, each push subscription has its own (the placeholder is its "
        "short name) and a token is accepted only with an envelope naming that subscription; "
        "without, one audience for all, and the envelope's subscription is taken on trust.",
    )
    push_service_account: str | None = _env(
        "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT",
        doc="Service account ('email') the push subscription's OIDC token must name.",
    )
    push_subscription: str | None = _env(
        "EMAIL_WORKER_PUSH_SUBSCRIPTION",
        doc="When set, pushes whose envelope names another subscription are refused (403): "
        "a name in GOOGLE_CLOUD_PROJECT, or projects/P/subscriptions/S. Per-service tenancy: "
        "one of the worker's own subscriptions (a service's or the replay one), and only its "
        "pushes are processed.",
    )
    push_ack_deadline_s: int | None = _env(
        "EMAIL_WORKER_PUSH_ACK_DEADLINE_S",
        doc="The push subscription's ack deadline (Pub/Sub's wait for each answer). serve "
        "refuses to start when one delivery may outlast it (worker/config/budget.py). "
        "Unset: not checked.",
    )
    push_certs_url: str = _env(
        "EMAIL_WORKER_PUSH_CERTS_URL",
        GOOGLE_CERTS_URL,
        doc="PEM certificates by key id that push tokens are verified against (https, or "
        "http on loopback for tests).",
    )
    ses_events_queue_url: str | None = _env(
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL",
        doc="SQS queue EventBridge delivers SES's events to; email-worker events reads it "
        "(required for events).",
    )
    ses_events_role_arn: str | None = _env(
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN",
        doc="AWS role email-worker events assumes with the Google identity (no keys) to read "
        "and delete from that queue (required for events).",
    )
    events_topic: str = _env(
        "EMAIL_WORKER_EVENTS_TOPIC",
        "email-events",
        doc="Topic email-worker events publishes event v1 messages to.",
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, required_for: Literal["pull", "serve"] | None = None
    ) -> Settings:
        """Build settings from ``environ``; raise :class:`SettingsError` listing all problems.

        With ``required_for``, what that command needs on top of valid values (see
        :meth:`missing_for`) is among the problems too: one message names everything to fix.
        """
        problems: list[str] = []
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            parse = _PARSERS.get(spec.name, _PARSERS_BY_TYPE.get(str(spec.type), str))
            try:
                values[spec.name] = parse(raw)
            except ValueError as error:
                problems.append(f"{name}={raw!r}: {error}")
        settings = cls(**values)
        problems.extend(settings._check())
        if required_for is not None:
            problems.extend(settings.missing_for(required_for))
        if problems:
            raise SettingsError(problems)
        return settings

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """``(variable, default, meaning)`` for every setting, for docs and ``--help``."""
        rows = []
        for spec in fields(cls):
            default = spec.default
            if isinstance(default, frozenset):
                default = ",".join(sorted(default))
            elif isinstance(default, bool):
                default = "on" if default else "off"
            rows.append(
                (
                    spec.metadata["env"],
                    "" if default is None else str(default),
                    spec.metadata["doc"],
                )
            )
        return rows

    def _check(self) -> list[str]:
        problems = []
        for name in ("session_ttl_s", "send_deadline_s", "publish_timeout_s", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{_env_name(name)} must be positive")
        if self.send_initial_backoff_s < 0 or self.send_max_backoff_s < self.send_initial_backoff_s:
            problems.append(
                "EMAIL_WORKER_SEND_MAX_BACKOFF_S must be at least "
                "EMAIL_WORKER_SEND_INITIAL_BACKOFF_S"
            )
        if not MIN_ACK_DEADLINE_S <= self.ack_deadline_s <= 600:
            problems.append(
                f"EMAIL_WORKER_ACK_DEADLINE_S must be {MIN_ACK_DEADLINE_S}-600: Pub/Sub allows "
                "at most 600, and shorter deadlines run out on a busy machine"
            )
        if not _LEDGER_URL.fullmatch(self.ledger):
            problems.append(
                "EMAIL_WORKER_LEDGER must be none, firestore, firestore://DATABASE, "
                "sqlite:///relative.db or sqlite:////absolute.db"
            )
        if self.ledger_takeover not in ("resend", "fail"):
            problems.append("EMAIL_WORKER_LEDGER_TAKEOVER must be resend or fail")
        if self.ledger_claim_s < self.send_deadline_s + 60:
            # The last send attempt may start at the deadline and take up to a minute.
            problems.append(
                "EMAIL_WORKER_LEDGER_CLAIM_S must be at least EMAIL_WORKER_SEND_DEADLINE_S + 60"
            )
        if self.ledger_retention_s < 24 * 3600:
            problems.append("EMAIL_WORKER_LEDGER_RETENTION_S must be at least a day (86400)")
        for name in ("send_max_attempts", "max_messages", "max_bytes", "concurrency"):
            if getattr(self, name) < 1:
                problems.append(f"{_env_name(name)} must be at least 1")
        if self.send_rate_per_s is not None and not self.send_rate_per_s > 0:
            problems.append("EMAIL_WORKER_SEND_RATE_PER_S must be positive")
        if self.max_delivery_attempts is not None and not 5 <= self.max_delivery_attempts <= 100:
            problems.append("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS must be 5-100, as in Pub/Sub")
        problems.extend(self._service_id_problems())
        if self.log_level not in _LOG_LEVELS:
            problems.append(f"EMAIL_WORKER_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if self.port is not None and not 0 < self.port < 65536:
            problems.append("PORT must be 1-65535")
        certs = urllib.parse.urlsplit(self.push_certs_url)
        if not certs.hostname or not (
            certs.scheme == "https"
            or (certs.scheme == "http" and certs.hostname in _LOOPBACK_HOSTS)
        ):
            problems.append(
                "EMAIL_WORKER_PUSH_CERTS_URL must be an https URL (http only on loopback)"
            )
        if self.push_audience is not None and self.push_audience.count("{subscription}") > 1:
            problems.append("EMAIL_WORKER_PUSH_AUDIENCE may contain {subscription} once at most")
        if self.push_service_account is not None and "@" not in self.push_service_account:
            problems.append("EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be a service account email")
        if not self.pause_poll_s > 0:
            problems.append("EMAIL_WORKER_PAUSE_POLL_S must be positive")
        if self.send_event_wait_s < 0:
            problems.append("EMAIL_WORKER_SEND_EVENT_WAIT_S must not be negative")
        if self.tenancy not in TENANCIES:
            problems.append("EMAIL_WORKER_TENANCY must be per-service or shared")
        for name in ("service_topic", "service_subscription"):
            template = getattr(self, name)
            if template.count("{service}") != 1 or not _SUBSCRIPTION_RE.fullmatch(
                template.replace("{service}", "svc")
            ):
                problems.append(
                    f"{_env_name(name)} must be a Pub/Sub name with {{service}} in it once"
                )
        if self.service_config_url is not None:
            problems.extend(_config_url_problems(self.service_config_url))
        if self.push_subscription is not None and not _SUBSCRIPTION_RE.fullmatch(
            self.push_subscription
        ):
            problems.append(
                "EMAIL_WORKER_PUSH_SUBSCRIPTION must be a subscription name or "
                "projects/PROJECT/subscriptions/NAME"
            )
        elif self.push_subscription is not None and self.per_service:
            problems.extend(self._per_service_push_subscription_problems(self.push_subscription))
        return problems

    def _per_service_push_subscription_problems(self, subscription: str) -> list[str]:
        """Per-service tenancy honours EMAIL_WORKER_PUSH_SUBSCRIPTION (only pushes from it are
        processed), so it must be one of the subscriptions the worker reads for a service."""
        ours = [self.service_subscription_for(s) for s in sorted(self.allowed_services)]
        ours.append(self.replay_subscription)
        project, _, name = subscription.rpartition("/subscriptions/")
        if name in ours and project in ("", f"projects/{self.project_id}"):
            return []
        return [
            "EMAIL_WORKER_PUSH_SUBSCRIPTION: with per-service tenancy only pushes from this "
            "subscription are processed, so it must be the worker's subscription for one of "
            "EMAIL_WORKER_ALLOWED_SERVICES (EMAIL_WORKER_SERVICE_SUBSCRIPTION) or the replay "
            f"subscription, in GOOGLE_CLOUD_PROJECT: one of {', '.join(ours)}; or leave it "
            "unset to accept pushes from all of them"
        ]

    def _service_id_problems(self) -> list[str]:
        """Allowed and default services that are no service id, or whose topic or
        subscription would be one of the worker's own (:mod:`worker.config.names`)."""
        problems = []
        named = [("EMAIL_WORKER_ALLOWED_SERVICES", s) for s in sorted(self.allowed_services)]
        if self.default_service_id is not None:
            named.append(("EMAIL_WORKER_SERVICE_ID", self.default_service_id))
        for variable, service in named:
            if not SERVICE_ID_RE.fullmatch(service):
                problems.append(f"{variable}: {service!r} is not a service id")
            elif (collision := colliding_name(self, service)) is not None:
                problems.append(f"{variable}: {collision}")
        return problems

    @property
    def per_service(self) -> bool:
        """Whether a request's service comes from where it was published (not its body)."""
        return self.tenancy == "per-service"

    def service_topic_for(self, service_id: str) -> str:
        """The topic ``service_id`` publishes its requests to (per-service tenancy)."""
        return self.service_topic.replace("{service}", service_id)

    def service_subscription_for(self, service_id: str) -> str:
        """The worker's subscription on ``service_id``'s topic (per-service tenancy)."""
        return self.service_subscription.replace("{service}", service_id)

    def request_topic_for(self, service_id: str) -> str:
        """Where a request of ``service_id`` is published, whatever the tenancy."""
        return self.service_topic_for(service_id) if self.per_service else self.requests_topic

    def push_subscription_path(self) -> str | None:
        """The full path pushes must come from, or None when any subscription may push."""
        if self.push_subscription is None or "/" in self.push_subscription:
            return self.push_subscription
        return f"projects/{self.require_project()}/subscriptions/{self.push_subscription}"

    def missing_for(self, command: Literal["pull", "serve"]) -> list[str]:
        """What ``email-worker pull`` or ``serve`` needs that these settings lack, as problems:
        a project, at least one allowed service and, for ``serve``, push authentication."""
        problems = []
        if not self.project_id:
            problems.append(_NO_PROJECT)
        if not self.allowed_services:
            problems.append("EMAIL_WORKER_ALLOWED_SERVICES must list at least one service")
        if command == "serve":
            problems.extend(self._push_auth_problems())
        return problems

    def require_push_auth(self) -> None:
        """For ``serve``: token verification is configured, or explicitly switched off."""
        problems = self._push_auth_problems()
        if problems:
            raise SettingsError(problems)

    def _push_auth_problems(self) -> list[str]:
        if not self.push_auth:
            return []
        missing = [
            name
            for name, value in (
                ("EMAIL_WORKER_PUSH_AUDIENCE", self.push_audience),
                ("EMAIL_WORKER_PUSH_SERVICE_ACCOUNT", self.push_service_account),
            )
            if not value
        ]
        if not missing:
            return []
        return [
            f"{' and '.join(missing)} must be set: the push endpoint accepts only "
            "requests signed for this audience by this service account "
            "(EMAIL_WORKER_PUSH_AUTH=off disables the check, for the emulator and "
            "local development only)"
        ]

    def require_project(self) -> str:
        """The project id, for commands that talk to Pub/Sub."""
        if not self.project_id:
            raise SettingsError([_NO_PROJECT])
        return self.project_id


def unknown_setting_names(environ: Mapping[str, str]) -> list[str]:
    """A problem for each ``EMAIL_WORKER_*`` variable in ``environ`` that is no setting.

    Such a name is almost always a typo that leaves the intended setting at its default, so
    each problem names the closest setting when one is close enough.
    """
    known = [str(spec.metadata["env"]) for spec in fields(Settings)]
    # Compared without the prefix, which every name shares: EMAIL_WORKER_PORT means PORT.
    by_stem = {name.removeprefix(_PREFIX): name for name in known}
    problems = []
    for name in sorted(environ):
        if not name.startswith(_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name.removeprefix(_PREFIX), by_stem, n=1)
        hint = f"; did you mean {by_stem[close[0]]}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def _config_url_problems(template: str) -> list[str]:
    """What is wrong with a service configuration URL template, before anything is read."""
    problems = []
    scheme = urllib.parse.urlsplit(template).scheme
    if scheme not in _CONFIG_URL_SCHEMES:
        problems.append(
            "EMAIL_WORKER_SERVICE_CONFIG_URL must be a file:// or gs:// URL"
            + (f" ({scheme}:// is not supported)" if scheme else "")
        )
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # an unmatched brace
        names = {""}
    if not names <= _CONFIG_URL_PLACEHOLDERS:
        problems.append(
            "EMAIL_WORKER_SERVICE_CONFIG_URL may hold only the placeholders {environment} "
            "and {service_id}"
        )
    return problems


def _env_name(attribute: str) -> str:
    return str(next(f for f in fields(Settings) if f.name == attribute).metadata["env"])


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not a whole number") from None


def _parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("not a number") from None


def _parse_switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError("must be on or off")


def _parse_names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


_PARSERS: dict[str, Callable[[str], Any]] = {
    "allowed_services": _parse_names,
    "push_auth": _parse_switch,
    "log_level": str.upper,
}
_PARSERS_BY_TYPE: dict[str, Callable[[str], Any]] = {
    "int": _parse_int,
    "int | None": _parse_int,
    "float": _parse_float,
    "float | None": _parse_float,
}
