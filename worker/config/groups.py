"""The settings groups, one frozen dataclass per concern, each checking its own values.

The module runs over 300 lines: one declaration per setting, and each field's ``doc`` is the
one hand-written description of that setting: docs/configuration.md is generated from it
(:mod:`worker.config.reference`). A group's ``problems()`` judges only its own fields; checks
that need two groups live in :mod:`worker.config.settings`. Defaults are the documented ones.
"""

from __future__ import annotations

import enum
import re
import string
import urllib.parse
from dataclasses import dataclass

from worker.config.fields import (
    choice,
    env_name,
    number,
    optional,
    service_names,
    setting,
    switch,
    text,
    whole_number,
)

__all__ = [
    "GOOGLE_CERTS_URL",
    "IAP_CERTS_URL",
    "MIN_ACK_DEADLINE_S",
    "SUBSCRIPTION_RE",
    "Console",
    "Events",
    "Http",
    "Ledger",
    "LedgerTakeover",
    "LogLevel",
    "Outage",
    "Process",
    "Pull",
    "Push",
    "Quota",
    "Redelivery",
    "Schedule",
    "Sending",
    "Services",
    "Tenancy",
    "Topics",
]

#: Google's public certificates for the ID tokens Pub/Sub push attaches (PEM by key id).
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
#: Identity-Aware Proxy's public keys (PEM by key id), to verify its signed headers.
IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
# The client library renews a lease after at most 90% of the deadline: 30 s leaves 3 s for a
# renewal to reach Pub/Sub from a starved process, and 10 s (Pub/Sub's own floor) only 1 s.
MIN_ACK_DEADLINE_S = 30
#: Pub/Sub's subscription name rule, optionally inside a full resource path.
SUBSCRIPTION_RE = re.compile(r"(?:projects/[^/\s]+/subscriptions/)?[A-Za-z][\w.~+%-]{2,254}")
_LEDGER_URL = re.compile(r"none|firestore(?:://[a-z(][a-z0-9()-]+)?|sqlite://(?:/\S+)?")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# What a service configuration URL may hold (worker/sending/service_config.py reads it).
_CONFIG_URL_SCHEMES = ("file", "gs")
_CONFIG_URL_PLACEHOLDERS = frozenset({"environment", "service_id"})
_NUMBER = optional(number)
_WHOLE = optional(whole_number)
_TEXT = optional(text)


class Tenancy(enum.StrEnum):
    """Who a request's service is (docs/security.md)."""

    PER_SERVICE = "per-service"
    SHARED = "shared"


class LedgerTakeover(enum.StrEnum):
    """What a takeover does when the dead delivery's send may or may not have happened."""

    RESEND = "resend"
    FAIL = "fail"


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def _positive(group: object, *attributes: str) -> list[str]:
    return [
        f"{env_name(group, a)} must be positive" for a in attributes if not getattr(group, a) > 0
    ]


def _at_least_one(group: object, *attributes: str) -> list[str]:
    return [f"{env_name(group, a)} must be at least 1" for a in attributes if getattr(group, a) < 1]


@dataclass(frozen=True)
class Topics:
    """Topics: the Pub/Sub topics and subscriptions of the worker and its commands."""

    project_id: str | None = setting(
        "GOOGLE_CLOUD_PROJECT",
        None,
        _TEXT,
        "Google Cloud project of the Pub/Sub topics (required).",
    )
    subscription: str = setting(
        "EMAIL_WORKER_SUBSCRIPTION",
        "email-requests-worker",
        text,
        "Shared tenancy: the subscription pulled from.",
    )
    requests_topic: str = setting(
        "EMAIL_WORKER_REQUESTS_TOPIC",
        "email-requests",
        text,
        "Shared tenancy: the topic requests are published to (CLI, replays).",
    )
    results_topic: str = setting(
        "EMAIL_WORKER_RESULTS_TOPIC", "email-results", text, "Topic results are published to."
    )
    dead_letter_topic: str = setting(
        "EMAIL_WORKER_DEAD_LETTER_TOPIC",
        "email-requests-dead-letter",
        text,
        "Topic rejected and failed requests (those which cannot succeed) are forwarded to.",
    )
    dead_letter_subscription: str = setting(
        "EMAIL_WORKER_DEAD_LETTER_SUBSCRIPTION",
        "email-requests-dead-letter-ops",
        text,
        "Operators' subscription on the dead-letter topic (used by `email-worker dlq`).",
    )
    service_topic: str = setting(
        "EMAIL_WORKER_SERVICE_TOPIC",
        "email-requests-{service}",
        text,
        "Per-service: each service's request topic (`{service}` is its id); used by the "
        "client and `send`.",
    )
    service_subscription: str = setting(
        "EMAIL_WORKER_SERVICE_SUBSCRIPTION",
        "email-requests-{service}-worker",
        text,
        "Per-service: the worker's subscription on each service's topic, one per allowed service.",
    )
    replay_topic: str = setting(
        "EMAIL_WORKER_REPLAY_TOPIC",
        "email-replays",
        text,
        "Per-service: where `dlq replay` publishes; the worker sends a replay only if its "
        "request ledger holds that very request from that same service.",
    )
    replay_subscription: str = setting(
        "EMAIL_WORKER_REPLAY_SUBSCRIPTION",
        "email-replays-worker",
        text,
        "Per-service: the worker's subscription on the replay topic.",
    )
    events_topic: str = setting(
        "EMAIL_WORKER_EVENTS_TOPIC",
        "email-events",
        text,
        "Topic `email-worker events` publishes event v1 messages to.",
    )

    def service_topic_for(self, service_id: str) -> str:
        """The topic ``service_id`` publishes its requests to (per-service tenancy)."""
        return self.service_topic.replace("{service}", service_id)

    def service_subscription_for(self, service_id: str) -> str:
        """The worker's subscription on ``service_id``'s topic (per-service tenancy)."""
        return self.service_subscription.replace("{service}", service_id)

    def problems(self) -> list[str]:
        problems = []
        for name in ("service_topic", "service_subscription"):
            template = getattr(self, name)
            if template.count("{service}") != 1 or not SUBSCRIPTION_RE.fullmatch(
                template.replace("{service}", "svc")
            ):
                problems.append(
                    f"{env_name(self, name)} must be a Pub/Sub name with {{service}} in it once"
                )
        return problems


@dataclass(frozen=True)
class Services:
    """Services: the services sent for, who sent a request, and their configuration."""

    tenancy: Tenancy = setting(
        "EMAIL_WORKER_TENANCY",
        Tenancy.PER_SERVICE,
        choice(Tenancy),
        "Who a request's service is. `per-service`: the topic it was published to (each "
        "service has its own, and only it may publish there); a request naming another "
        "service is `publisher_not_allowed`. `shared`: the `service_id` in the request, "
        "trusted; any publisher to the one topic can send as any allowed service, and the "
        "worker logs a warning at start. See [security.md](security.md).",
    )
    allowed: frozenset[str] = setting(
        "EMAIL_WORKER_ALLOWED_SERVICES",
        frozenset(),
        service_names,
        "Comma-separated services this worker sends for; others are `unknown_service` "
        "(required for `pull`/`serve`). A service whose topic or subscription would be one of "
        "the worker's own topics or subscriptions (`dead-letter`, with the default names) is "
        "refused at start (exit 2; worker/config/names.py).",
    )
    default_id: str | None = setting(
        "EMAIL_WORKER_SERVICE_ID",
        None,
        _TEXT,
        "Shared tenancy: service of requests that name none.",
    )
    config_url: str | None = setting(
        "EMAIL_WORKER_SERVICE_CONFIG_URL",
        None,
        _TEXT,
        "`file://` or `gs://` template of service configuration documents, with the "
        "placeholders `{environment}` and `{service_id}`. Unset: the default shown, set in "
        "worker/sending/service_config.py.",
        shown_default="`gs://email-worker-config/{environment}/{service_id}.json`",
    )
    templates_url: str | None = setting(
        "EMAIL_WORKER_TEMPLATES_URL",
        None,
        _TEXT,
        "`file://` or `gs://` template of where each service's email templates live, with the "
        "placeholders `{environment}` and `{service_id}` (layout in docs/formats.md). Unset: "
        "the default shown, set in worker/sending/template_store.py.",
        shown_default="`gs://email-worker-config/{environment}/templates/{service_id}`",
    )
    template_latest_ttl_s: float = setting(
        "EMAIL_WORKER_TEMPLATE_LATEST_TTL_S",
        5.0,
        number,
        "How long the latest version of a template, once looked up, is used for requests "
        "naming no version before storage is listed again (a version published meanwhile is "
        "used after at most this long); 0 looks it up for every request.",
    )
    config_environment: str = setting(
        "EMAIL_WORKER_ENVIRONMENT",
        "production",
        text,
        "`{environment}` in the service configuration URL.",
    )
    session_ttl_s: float = setting(
        "EMAIL_WORKER_SESSION_TTL_S",
        300.0,
        number,
        "How long a service's session and configuration are reused before being read again.",
    )

    @property
    def per_service(self) -> bool:
        """Whether a request's service comes from where it was published (not its body)."""
        return self.tenancy is Tenancy.PER_SERVICE

    def problems(self) -> list[str]:
        problems = _positive(self, "session_ttl_s")
        if self.template_latest_ttl_s < 0:
            problems.append("EMAIL_WORKER_TEMPLATE_LATEST_TTL_S must not be negative")
        if self.config_url is not None:
            problems.extend(_config_url_problems(self.config_url))
        if self.templates_url is not None:
            problems.extend(_config_url_problems(self.templates_url, "EMAIL_WORKER_TEMPLATES_URL"))
        return problems


@dataclass(frozen=True)
class Sending:
    """Sending: SES retries within one delivery, and the send rate."""

    max_attempts: int = setting(
        "EMAIL_WORKER_SEND_MAX_ATTEMPTS",
        4,
        whole_number,
        "Send attempts per delivery for transient SES/STS failures.",
    )
    initial_backoff_s: float = setting(
        "EMAIL_WORKER_SEND_INITIAL_BACKOFF_S",
        0.5,
        number,
        "First retry backoff (exponential, with jitter).",
    )
    max_backoff_s: float = setting(
        "EMAIL_WORKER_SEND_MAX_BACKOFF_S", 8.0, number, "Longest retry backoff."
    )
    deadline_s: float = setting(
        "EMAIL_WORKER_SEND_DEADLINE_S",
        30.0,
        number,
        "No retry starts after this long within one delivery; keeps one attempt well inside "
        "the ack deadline.",
    )
    rate_per_s: float | None = setting(
        "EMAIL_WORKER_SEND_RATE_PER_S",
        None,
        _NUMBER,
        "Most recipients per second this instance sends to SES (SES counts each recipient); "
        "sends wait their turn, and one that would wait longer than "
        "`EMAIL_WORKER_SEND_DEADLINE_S` is handed back as `throttled`. An upper bound on the "
        "instance's share of the SES quota (`EMAIL_WORKER_QUOTA_PACING`). Unset: the share "
        "alone paces (or nothing, with pacing off). See [scaling.md](scaling.md).",
        shown_default="none",
    )
    attachment_memory_bytes: int = setting(
        "EMAIL_WORKER_ATTACHMENT_MEMORY_BYTES",
        256 * 1024 * 1024,
        whole_number,
        "Most bytes of `gs://` attachments this instance holds in memory at once, across all "
        "its threads, each counted with the copies its send makes (about 8 times its size: "
        "its base64 in the message, in the bytes for SES and in SES's request); a send that "
        "would exceed it waits its turn (for at most `EMAIL_WORKER_SEND_DEADLINE_S`, then it "
        "is handed back as `throttled`), and one larger than all of it runs alone.",
    )

    def problems(self) -> list[str]:
        problems = _positive(self, "deadline_s", "attachment_memory_bytes")
        problems += _at_least_one(self, "max_attempts")
        if self.initial_backoff_s < 0 or self.max_backoff_s < self.initial_backoff_s:
            problems.append(
                "EMAIL_WORKER_SEND_MAX_BACKOFF_S must be at least "
                "EMAIL_WORKER_SEND_INITIAL_BACKOFF_S"
            )
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            problems.append("EMAIL_WORKER_SEND_RATE_PER_S must be positive")
        return problems


@dataclass(frozen=True)
class Quota:
    """Quota: pacing from SES's live quota (worker/processing/quota_pacer.py)."""

    pacing: bool = setting(
        "EMAIL_WORKER_QUOTA_PACING",
        True,
        switch,
        "`on`: each instance reads its SES account's quota (`GetAccount`, which the services' "
        "roles must be allowed) and sends at most its share of the maximum send rate (the "
        "rate divided by the live instances, counted by heartbeats in the request ledger), "
        "cutting it when SES throttles; near the 24-hour cap requests wait in Pub/Sub. `off`: "
        "only `EMAIL_WORKER_SEND_RATE_PER_S` paces. See [scaling.md](scaling.md).",
    )
    refresh_s: float = setting(
        "EMAIL_WORKER_QUOTA_REFRESH_S",
        5.0,
        number,
        "How often each instance reads the SES quota (one `GetAccount` per account and region; "
        "a throttled read keeps the last quota, so with many instances raise it); requests held "
        "by the 24-hour cap are looked at again this often.",
    )
    heartbeat_s: float = setting(
        "EMAIL_WORKER_INSTANCE_HEARTBEAT_S",
        5.0,
        number,
        "How often each instance writes its heartbeat in the ledger and counts the live ones; "
        "an instance that stops beating stops counting three of these later.",
    )
    fraction: float = setting(
        "EMAIL_WORKER_QUOTA_FRACTION",
        0.98,
        number,
        "The share of SES's maximum send rate the instances use together; the rest absorbs "
        "the jitter of independent instances.",
    )

    def problems(self) -> list[str]:
        problems = _positive(self, "refresh_s", "heartbeat_s")
        if not 0 < self.fraction <= 1:
            problems.append("EMAIL_WORKER_QUOTA_FRACTION must be above 0 and at most 1")
        return problems


@dataclass(frozen=True)
class Ledger:
    """Ledger: the request ledger's claims, records, takeovers and pauses."""

    url: str = setting(
        "EMAIL_WORKER_LEDGER",
        "sqlite:///email-worker-ledger.db",
        text,
        "The request ledger that sends each request once: `firestore` (or "
        "`firestore://DATABASE`) when several instances run, `sqlite:///relative.db` or "
        "`sqlite:////absolute.db` for one instance, `none` to turn deduplication off. The "
        "image sets `sqlite:////tmp/email-worker-ledger.db`; terraform sets "
        "`firestore://email-worker-ledger` (its own database, `ledger_database_id`).",
    )
    claim_s: float = setting(
        "EMAIL_WORKER_LEDGER_CLAIM_S",
        90.0,
        number,
        "How long a delivery's claim on a request lasts (at least "
        "`EMAIL_WORKER_SEND_DEADLINE_S` + 60); a claim left by a crashed worker is taken "
        "over after it.",
    )
    retention_s: float = setting(
        "EMAIL_WORKER_LEDGER_RETENTION_S",
        691200.0,
        number,
        "How long a request's record is kept (default 8 days: Pub/Sub's 7-day retention and "
        "a day for replays).",
    )
    takeover: LedgerTakeover = setting(
        "EMAIL_WORKER_LEDGER_TAKEOVER",
        LedgerTakeover.RESEND,
        choice(LedgerTakeover),
        "A claim that expired during its SES call leaves the send unknown: `resend` (at "
        "least once) or `fail` with `outcome_unknown` (at most once).",
    )
    send_event_wait_s: float = setting(
        "EMAIL_WORKER_SEND_EVENT_WAIT_S",
        120.0,
        number,
        "How long after a dead delivery's claim expired the request waits for SES's Send "
        "event (recorded by `email-worker events`) before deciding whether to send it again; "
        "SES, EventBridge and the reader's 20 s long poll usually take seconds. `0`: no wait, "
        "for deployments that do not run the events reader.",
    )
    pause_poll_s: float = setting(
        "EMAIL_WORKER_PAUSE_POLL_S",
        5.0,
        number,
        "How often each worker reads the operators' pauses from the ledger (`email-worker "
        "pause`): how soon it stops or starts pulling a paused service. See "
        "[operations.md](operations.md#stopping-and-resuming-sending).",
    )

    def problems(self) -> list[str]:
        problems = []
        if not _LEDGER_URL.fullmatch(self.url):
            problems.append(
                "EMAIL_WORKER_LEDGER must be none, firestore, firestore://DATABASE, "
                "sqlite:///relative.db or sqlite:////absolute.db"
            )
        if self.retention_s < 24 * 3600:
            problems.append("EMAIL_WORKER_LEDGER_RETENTION_S must be at least a day (86400)")
        problems.extend(_positive(self, "pause_poll_s"))
        if self.send_event_wait_s < 0:
            problems.append("EMAIL_WORKER_SEND_EVENT_WAIT_S must not be negative")
        return problems


@dataclass(frozen=True)
class Schedule:
    """Scheduled sending: how `pull` and `serve` dispatch the requests whose `send_at` is due."""

    poll_s: float = setting(
        "EMAIL_WORKER_SCHEDULE_POLL_S",
        5.0,
        number,
        "How often each worker looks for scheduled requests that have fallen due "
        "([formats.md](formats.md#scheduled-sending)); a request goes out at most about this "
        "long after its `send_at`, under normal load.",
    )
    lease_s: float = setting(
        "EMAIL_WORKER_SCHEDULE_LEASE_S",
        60.0,
        number,
        "How long a worker holds a due request it took to send: if it dies, another worker "
        "takes the request after this long (the request ledger still sends it once).",
    )
    batch: int = setting(
        "EMAIL_WORKER_SCHEDULE_BATCH",
        200,
        whole_number,
        "The most due requests one worker takes at a time.",
    )
    min_ahead_s: float = setting(
        "EMAIL_WORKER_SCHEDULE_MIN_AHEAD_S",
        60.0,
        number,
        "A `send_at` less than this far ahead, or past, is sent at once rather than kept "
        "(the request format says a minute; tests shorten it).",
    )
    threads: int = setting(
        "EMAIL_WORKER_SCHEDULE_THREADS",
        8,
        whole_number,
        "How many due requests one worker sends at once.",
    )

    def problems(self) -> list[str]:
        problems = _positive(self, "poll_s", "lease_s") + _at_least_one(self, "batch", "threads")
        if self.min_ahead_s < 0:
            problems.append("EMAIL_WORKER_SCHEDULE_MIN_AHEAD_S must not be negative")
        return problems


@dataclass(frozen=True)
class Redelivery:
    """Redelivery: the subscription's retry policy, and the outage it must outlast."""

    max_delivery_attempts: int | None = setting(
        "EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS",
        None,
        _WHOLE,
        "The last delivery attempt (5-100); read from the subscription's dead-letter policy "
        "when unset. `setup` gives new subscriptions 12 when unset.",
        shown_default="from the subscription",
    )
    min_backoff_s: int | None = setting(
        "EMAIL_WORKER_RETRY_MIN_BACKOFF_S",
        None,
        _WHOLE,
        "The subscription's retry policy minimum backoff (0-600). With the maximum and "
        "`EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS`, `pull` and `serve` refuse to start (exit 2) "
        "when the attempts cannot outlast the ledger claim, the Send-event wait and "
        "`EMAIL_WORKER_OUTAGE_ALLOWANCE_S` (worker/config/budget.py). Unset: not checked, "
        "with a warning. Terraform sets them.",
    )
    max_backoff_s: int | None = setting(
        "EMAIL_WORKER_RETRY_MAX_BACKOFF_S",
        None,
        _WHOLE,
        "The subscription's retry policy maximum backoff (0-600; see "
        "`EMAIL_WORKER_RETRY_MIN_BACKOFF_S`).",
    )
    outage_allowance_s: float = setting(
        "EMAIL_WORKER_OUTAGE_ALLOWANCE_S",
        1800.0,
        number,
        "How long a downstream outage the subscription's delivery attempts must outlast "
        "(checked at start with the retry settings above).",
    )

    def problems(self) -> list[str]:
        problems = []
        attempts = self.max_delivery_attempts
        if attempts is not None and not 5 <= attempts <= 100:
            problems.append("EMAIL_WORKER_MAX_DELIVERY_ATTEMPTS must be 5-100, as in Pub/Sub")
        for name in ("min_backoff_s", "max_backoff_s"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 600:
                problems.append(f"{env_name(self, name)} must be 0-600, as in Pub/Sub")
        low, high = self.min_backoff_s, self.max_backoff_s
        if low is not None and high is not None and low > high:
            problems.append(
                "EMAIL_WORKER_RETRY_MIN_BACKOFF_S must not exceed EMAIL_WORKER_RETRY_MAX_BACKOFF_S"
            )
        return problems + _positive(self, "outage_allowance_s")


@dataclass(frozen=True)
class Outage:
    """Outage: the outage breaker (worker/processing/breaker.py)."""

    window_s: float = setting(
        "EMAIL_WORKER_OUTAGE_WINDOW_S",
        30.0,
        number,
        "Outage breaker: how far back it looks at SES, STS and ledger calls.",
    )
    min_calls: int = setting(
        "EMAIL_WORKER_OUTAGE_MIN_CALLS",
        10,
        whole_number,
        "Outage breaker: calls in that window before it may trip; `0` turns it off.",
    )
    failure_ratio: float = setting(
        "EMAIL_WORKER_OUTAGE_FAILURE_RATIO",
        0.8,
        number,
        "Outage breaker: the share of those calls failing transiently, from two services or "
        "more (or every active one), that trips it. It then holds new work: `pull` keeps its "
        "messages leased and leases no more, `serve` answers 503; one role's `AccessDenied` "
        "or one unverified identity never trips it.",
    )
    probe_interval_s: float = setting(
        "EMAIL_WORKER_OUTAGE_PROBE_INTERVAL_S",
        5.0,
        number,
        "Outage breaker: while holding, one delivery probes the downstream this often; the "
        "first that gets through ends the hold.",
    )

    def problems(self) -> list[str]:
        problems = _positive(self, "window_s", "probe_interval_s")
        if self.min_calls < 0:
            problems.append("EMAIL_WORKER_OUTAGE_MIN_CALLS must not be negative")
        if not 0 < self.failure_ratio <= 1:
            problems.append("EMAIL_WORKER_OUTAGE_FAILURE_RATIO must be above 0 and at most 1")
        return problems


@dataclass(frozen=True)
class Pull:
    """Pull: flow control, what `pull` leases and for how long."""

    max_messages: int = setting(
        "EMAIL_WORKER_MAX_MESSAGES",
        1000,
        whole_number,
        "Flow control: messages held (leased) at once, waiting or being processed; keep it "
        "well above `EMAIL_WORKER_CONCURRENCY`, so the stream is read promptly.",
    )
    max_bytes: int = setting(
        "EMAIL_WORKER_MAX_BYTES",
        256 * 1024 * 1024,
        whole_number,
        "Flow control: bytes held at once.",
    )
    ack_deadline_s: int = setting(
        "EMAIL_WORKER_ACK_DEADLINE_S",
        60,
        whole_number,
        f"Ack deadline of every held message ({MIN_ACK_DEADLINE_S}-600), renewed before it "
        "runs out; also how soon the messages of a crashed worker are delivered again.",
    )

    def problems(self) -> list[str]:
        problems = _at_least_one(self, "max_messages", "max_bytes")
        if not MIN_ACK_DEADLINE_S <= self.ack_deadline_s <= 600:
            problems.append(
                f"EMAIL_WORKER_ACK_DEADLINE_S must be {MIN_ACK_DEADLINE_S}-600: Pub/Sub allows "
                "at most 600, and shorter deadlines run out on a busy machine"
            )
        return problems


@dataclass(frozen=True)
class Push:
    """Push: who may push to `serve`, and from which subscription ([push.md](push.md))."""

    auth: bool = setting(
        "EMAIL_WORKER_PUSH_AUTH",
        True,
        switch,
        "`on`: every push must carry a valid Google-signed OIDC token. `off`: no check at "
        "all, for the Pub/Sub emulator and local development only; `serve` logs a warning at "
        "start.",
    )
    audience: str | None = setting(
        "EMAIL_WORKER_PUSH_AUDIENCE",
        None,
        _TEXT,
        "The `aud` the push token must have: the audience configured on the push "
        "subscription (by default its push endpoint URL). With `{subscription}` in it (once), "
        "each push subscription has its own audience, the placeholder filled with its short "
        "name, and a token is accepted only with an envelope naming that subscription; "
        "without, one audience for all, and the envelope's subscription is taken on trust "
        "([push.md](push.md)).",
    )
    service_account: str | None = setting(
        "EMAIL_WORKER_PUSH_SERVICE_ACCOUNT",
        None,
        _TEXT,
        "The `email` the push token must name: the subscription's push authentication "
        "service account. Compared without regard to case.",
    )
    subscription: str | None = setting(
        "EMAIL_WORKER_PUSH_SUBSCRIPTION",
        None,
        _TEXT,
        "The subscription pushes must come from (a name in `GOOGLE_CLOUD_PROJECT`, or "
        "`projects/P/subscriptions/S`): a push whose envelope names another subscription, or "
        "none, is answered `403` and not processed. Defence in depth behind the token: "
        "another push subscription using the same service account cannot feed this worker. "
        "Terraform sets it with shared tenancy. With per-service tenancy it must be one of "
        "the worker's own subscriptions (a service's, or the replay one), and only its pushes "
        "are processed.",
    )
    ack_deadline_s: int | None = setting(
        "EMAIL_WORKER_PUSH_ACK_DEADLINE_S",
        None,
        _WHOLE,
        "The push subscription's ack deadline (Pub/Sub's wait for each answer); `serve` "
        "refuses to start (exit 2) when one delivery may outlast it (worker/config/budget.py: "
        "242 s with the defaults). Unset: not checked, with a warning. Terraform sets it.",
    )
    certs_url: str = setting(
        "EMAIL_WORKER_PUSH_CERTS_URL",
        GOOGLE_CERTS_URL,
        text,
        "Google's PEM certificates by key id, which push tokens are verified against: https "
        "only, except `http://` on loopback, so tests can serve their own signing key.",
    )

    def problems(self) -> list[str]:
        problems = []
        certs = urllib.parse.urlsplit(self.certs_url)
        if not certs.hostname or not (
            certs.scheme == "https"
            or (certs.scheme == "http" and certs.hostname in _LOOPBACK_HOSTS)
        ):
            problems.append(
                "EMAIL_WORKER_PUSH_CERTS_URL must be an https URL (http only on loopback)"
            )
        if self.audience is not None and self.audience.count("{subscription}") > 1:
            problems.append("EMAIL_WORKER_PUSH_AUDIENCE may contain {subscription} once at most")
        if self.service_account is not None and "@" not in self.service_account:
            problems.append("EMAIL_WORKER_PUSH_SERVICE_ACCOUNT must be a service account email")
        if self.subscription is not None and not SUBSCRIPTION_RE.fullmatch(self.subscription):
            problems.append(
                "EMAIL_WORKER_PUSH_SUBSCRIPTION must be a subscription name or "
                "projects/PROJECT/subscriptions/NAME"
            )
        return problems

    def auth_problems(self) -> list[str]:
        """For ``serve``: token verification is configured, or explicitly switched off."""
        if not self.auth:
            return []
        missing = [
            name
            for name, value in (
                ("EMAIL_WORKER_PUSH_AUDIENCE", self.audience),
                ("EMAIL_WORKER_PUSH_SERVICE_ACCOUNT", self.service_account),
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


@dataclass(frozen=True)
class Http:
    """HTTP: the server of the push endpoint, health and metrics."""

    port: int | None = setting(
        "PORT",
        None,
        _WHOLE,
        "HTTP port: push endpoint, `/healthz`, `/readyz`, `/metrics` (`serve` listens on 8080 "
        "when unset; `pull` serves HTTP only when it is set).",
        shown_default="none (`serve`: 8080)",
    )
    host: str = setting(
        "EMAIL_WORKER_HTTP_HOST",
        "0.0.0.0",  # noqa: S104 - Cloud Run routes to the container's interfaces
        text,
        "Address the HTTP server listens on (`serve`, and `pull` when `PORT` is set).",
    )

    def problems(self) -> list[str]:
        if self.port is not None and not 0 < self.port < 65536:
            return ["PORT must be 1-65535"]
        return []


@dataclass(frozen=True)
class Events:
    """Events: where `email-worker events` reads SES's events."""

    queue_url: str | None = setting(
        "EMAIL_WORKER_SES_EVENTS_QUEUE_URL",
        None,
        _TEXT,
        "SQS queue EventBridge delivers SES's events to; `email-worker events` reads it "
        "(required for `events`).",
    )
    role_arn: str | None = setting(
        "EMAIL_WORKER_SES_EVENTS_ROLE_ARN",
        None,
        _TEXT,
        "AWS role `email-worker events` assumes with the Google identity, as the senders' "
        "roles are (no keys), to read and delete from that queue (required for `events`).",
    )
    reputation_window_s: float = setting(
        "EMAIL_WORKER_REPUTATION_WINDOW_S",
        3600.0,
        number,
        "Reputation breaker (`events`): how far back it counts each service's sends, hard "
        "bounces and complaints, in per-minute buckets held in memory.",
    )
    reputation_min_sends: int = setting(
        "EMAIL_WORKER_REPUTATION_MIN_SENDS",
        500,
        whole_number,
        "Reputation breaker: recipients a service must have sent to in that window before its "
        "rates are judged; `0` turns the breaker off.",
    )
    reputation_bounce_percent: float = setting(
        "EMAIL_WORKER_REPUTATION_BOUNCE_PERCENT",
        4.0,
        number,
        "Reputation breaker: the hard-bounce rate, in percent of recipients sent to, at which "
        "it pauses the service (SES reviews an account at 5% and may pause it at 10%).",
    )
    reputation_complaint_percent: float = setting(
        "EMAIL_WORKER_REPUTATION_COMPLAINT_PERCENT",
        0.2,
        number,
        "Reputation breaker: the complaint rate, in percent, at which it pauses the service "
        "(SES reviews at 0.1% and may pause at 0.5%). Only `email-worker resume` ends it.",
    )

    def problems(self) -> list[str]:
        problems = _positive(self, "reputation_window_s")
        if self.reputation_min_sends < 0:
            problems.append("EMAIL_WORKER_REPUTATION_MIN_SENDS must not be negative")
        for attribute in ("reputation_bounce_percent", "reputation_complaint_percent"):
            if not 0 < getattr(self, attribute) <= 100:
                problems.append(f"{env_name(self, attribute)} must be above 0 and at most 100")
        return problems


@dataclass(frozen=True)
class Process:
    """Process: the worker's threads, publishing, shutdown and logs."""

    concurrency: int = setting(
        "EMAIL_WORKER_CONCURRENCY",
        32,
        whole_number,
        "Threads processing messages (SES calls block on I/O).",
    )
    publish_timeout_s: float = setting(
        "EMAIL_WORKER_PUBLISH_TIMEOUT_S",
        30.0,
        number,
        "How long to wait for a result or dead letter to be confirmed before nacking. The "
        "operators' commands publish within it too, and give up other Pub/Sub calls after "
        "it or 10 s, whichever is shorter.",
    )
    shutdown_timeout_s: float = setting(
        "EMAIL_WORKER_SHUTDOWN_TIMEOUT_S",
        8.0,
        number,
        "Time to finish in-flight work on SIGTERM (Cloud Run allows 10 s).",
    )
    log_level: LogLevel = setting(
        "EMAIL_WORKER_LOG_LEVEL",
        LogLevel.INFO,
        choice(LogLevel, ignore_case=True),
        "`DEBUG`, `INFO`, `WARNING` or `ERROR` (any case). The operators' commands log to "
        "stderr, at `WARNING` unless this is set.",
    )

    def problems(self) -> list[str]:
        return _positive(self, "publish_timeout_s", "shutdown_timeout_s") + _at_least_one(
            self, "concurrency"
        )


def _principals(raw: str) -> frozenset[str]:
    """A comma-separated list of email addresses or ``domain:NAME`` entries, lower-cased."""
    entries = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    for entry in entries:
        if "@" not in entry and not (entry.startswith("domain:") and len(entry) > 7):
            raise ValueError("each entry must be an email address or domain:NAME")
    return entries


def _loopback_http_or_https(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return bool(parts.hostname) and (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)
    )


@dataclass(frozen=True)
class Console:
    """Console: the operators' and support web console (`email-worker console`)."""

    host: str = setting(
        "EMAIL_WORKER_CONSOLE_HOST",
        "127.0.0.1",
        text,
        "Address the console listens on. Anything but loopback needs "
        "`EMAIL_WORKER_CONSOLE_IAP_AUDIENCE`: the console refuses to start otherwise.",
    )
    port: int = setting(
        "EMAIL_WORKER_CONSOLE_PORT",
        8081,
        whole_number,
        "Port the console listens on (`PORT`, when set, wins: Cloud Run sets it).",
    )
    iap_audience: str | None = setting(
        "EMAIL_WORKER_CONSOLE_IAP_AUDIENCE",
        None,
        _TEXT,
        "Identity-Aware Proxy's audience for the console "
        "(`/projects/NUMBER/locations/REGION/services/NAME` with IAP on the Cloud Run service, "
        "`/projects/NUMBER/global/backendServices/ID` behind a load balancer). "
        "Set: every request must carry IAP's signed header, verified (signature, audience, "
        "issuer, expiry). Unset: no authentication, loopback only.",
    )
    iap_certs_url: str = setting(
        "EMAIL_WORKER_CONSOLE_IAP_CERTS_URL",
        IAP_CERTS_URL,
        text,
        "IAP's public keys (PEM by key id): https only, except `http://` on loopback for tests.",
    )
    viewers: frozenset[str] = setting(
        "EMAIL_WORKER_CONSOLE_VIEWERS",
        frozenset(),
        _principals,
        "With IAP: who may look (comma-separated email addresses or `domain:NAME`).",
        shown_default="none",
    )
    operators: frozenset[str] = setting(
        "EMAIL_WORKER_CONSOLE_OPERATORS",
        frozenset(),
        _principals,
        "With IAP: who may also replay and purge dead letters (same form as the viewers).",
        shown_default="none",
    )
    dead_letter_search_s: float = setting(
        "EMAIL_WORKER_CONSOLE_DEAD_LETTER_SEARCH_S",
        3.0,
        number,
        "How long a request's page looks for its dead letters (0: not at all).",
    )

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK_HOSTS or self.host.startswith("127.")

    def problems(self) -> list[str]:
        problems = []
        if not 0 < self.port < 65536:
            problems.append("EMAIL_WORKER_CONSOLE_PORT must be 1-65535")
        if not _loopback_http_or_https(self.iap_certs_url):
            problems.append(
                "EMAIL_WORKER_CONSOLE_IAP_CERTS_URL must be an https URL (http only on loopback)"
            )
        if self.dead_letter_search_s < 0:
            problems.append("EMAIL_WORKER_CONSOLE_DEAD_LETTER_SEARCH_S must not be negative")
        return problems

    def binding_problems(self) -> list[str]:
        """For ``console``: anything but loopback needs IAP in front."""
        if self.loopback or self.iap_audience:
            return []
        return [
            f"EMAIL_WORKER_CONSOLE_HOST={self.host} is not a loopback address: the console "
            "serves other hosts only behind Identity-Aware Proxy "
            "(set EMAIL_WORKER_CONSOLE_IAP_AUDIENCE)"
        ]


def _config_url_problems(
    template: str, variable: str = "EMAIL_WORKER_SERVICE_CONFIG_URL"
) -> list[str]:
    """What is wrong with a service configuration URL template, before anything is read."""
    problems = []
    scheme = urllib.parse.urlsplit(template).scheme
    if scheme not in _CONFIG_URL_SCHEMES:
        problems.append(
            f"{variable} must be a file:// or gs:// URL"
            + (f" ({scheme}:// is not supported)" if scheme else "")
        )
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # an unmatched brace
        names = {""}
    if not names <= _CONFIG_URL_PLACEHOLDERS:
        problems.append(
            f"{variable} may hold only the placeholders {{environment}} and {{service_id}}"
        )
    return problems
