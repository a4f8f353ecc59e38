"""Per-service configuration documents: which AWS role a service sends as, and from where.

A document is JSON::

    {
      "service_id": "billing",
      "service_role_arn": "arn:aws:iam::123456789012:role/email-billing",
      "aws_region": "eu-west-2",                    (optional)
      "default_from_address": "billing@example.org", (optional)
      "allowed_from_domains": ["example.org"],       (optional)
      "attachment_prefixes": ["gs://billing-files/outgoing/"], (optional)
      "ses_tenant": "billing",                      (optional)
      "reputation_policy": "standard",              (optional: none, standard, strict)
      "weight": 3,                                  (optional, default 1)
      "max_per_day": 50000,                         (optional, default none)
      "over_daily_cap": "wait"                      (optional: "wait" or "reject")
    }

``attachment_prefixes`` are where the service's attachments by reference may be read from
(each ``gs://bucket/`` or ``gs://bucket/path/``, strictly, see `worker.config.gcs_uri`);
without them a ``gcs`` attachment is ``attachment_forbidden``.

``ses_tenant`` is the SES tenant the service's email is sent through (``TenantName`` on every
``SendEmail``): SES then keeps the service's reputation, sending status and suppression list
apart from the other services'. Without it the service sends with no tenant, as before
tenants existed. ``reputation_policy`` is the policy terraform gives the tenant (SES's
``none``, ``standard`` or ``strict``); the worker only checks it.

``weight`` is the service's share of the worker's send rate when several services have sends
waiting (a positive number; 3 against another's 1 sends three times as fast), see
`worker.processing.send_rate`. ``max_per_day`` caps the recipients the service sends in any
24 hours, counted over every instance (`worker.processing.daily_cap`); over it a request waits
in Pub/Sub (``"wait"``) or is rejected with ``daily_cap_reached`` (``"reject"``).

It is found through a URL template with ``{environment}`` and ``{service_id}`` placeholders,
``file://`` or ``gs://``, and read by `worker.sending.service_config_fetch`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.config.gcs_uri import GcsPrefix, GcsUriError, parse_prefix_uri
from worker.sending.envelope import idna_domain
from worker.sending.errors import ConfigurationError
from worker.sending.service_config_fetch import fetch_document

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "DEFAULT_SERVICE_CONFIG_URL",
    "OVER_DAILY_CAP_CHOICES",
    "REPUTATION_POLICIES",
    "SERVICE_CONFIG_URL_ENV",
    "ServiceConfig",
    "config_location",
    "load_service_config",
    "parse_service_config",
]

#: Where production configuration lives unless ``EMAIL_WORKER_SERVICE_CONFIG_URL`` says
#: otherwise. terraform creates this bucket layout and sets the variable explicitly.
DEFAULT_SERVICE_CONFIG_URL = "gs://email-worker-config/{environment}/{service_id}.json"
SERVICE_CONFIG_URL_ENV = "EMAIL_WORKER_SERVICE_CONFIG_URL"
DEFAULT_ENVIRONMENT = "production"

# An IAM role's ARN in any AWS partition: arn:aws:iam::ACCOUNT:role/PATH/NAME.
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
# A domain name in its ASCII form: dot-separated labels of letters, digits and inner hyphens.
_DOMAIN_RE = re.compile(
    r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
)
_KNOWN_KEYS = frozenset(
    {
        "service_id",
        "service_role_arn",
        "aws_region",
        "default_from_address",
        "allowed_from_domains",
        "attachment_prefixes",
        "ses_tenant",
        "reputation_policy",
        "weight",
        "max_per_day",
        "over_daily_cap",
    }
)
# SES's rule for a tenant's name: up to 64 letters, digits, hyphens and underscores.
_TENANT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
REPUTATION_POLICIES = ("none", "standard", "strict")
#: What a request over its service's ``max_per_day`` does.
OVER_DAILY_CAP_CHOICES = ("wait", "reject")
# Bounds that catch typos (a weight of 1e9 would starve every other service).
_MAX_WEIGHT = 1000.0
_MAX_PER_DAY = 10**9
_MAX_ATTACHMENT_PREFIXES = 50


@dataclass(frozen=True)
class ServiceConfig:
    """One service's sending configuration, as read from its document."""

    service_id: str
    service_role_arn: str
    aws_region: str | None = None
    default_from_address: str | None = None
    allowed_from_domains: tuple[str, ...] = ()
    location: str = ""
    attachment_prefixes: tuple[GcsPrefix, ...] = ()
    #: The SES tenant every send names (``TenantName``); None: no tenant.
    ses_tenant: str | None = None
    #: The tenant's reputation policy, for terraform: none, standard or strict.
    reputation_policy: str | None = None
    #: The service's share of the send rate against other services with sends waiting.
    weight: float = 1.0
    #: Most recipients sent in any 24 hours (over all instances); None: no cap of its own.
    max_per_day: int | None = None
    #: Over ``max_per_day``: "wait" (held in Pub/Sub) or "reject" (``daily_cap_reached``).
    over_daily_cap: str = "wait"


def config_location(service_id: str, environment: str, template: str | None = None) -> str:
    """The URL of ``service_id``'s document in ``environment``."""
    if template is None:
        template = os.environ.get(SERVICE_CONFIG_URL_ENV) or DEFAULT_SERVICE_CONFIG_URL
    try:
        return template.format(environment=environment, service_id=service_id)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigurationError(
            f"{SERVICE_CONFIG_URL_ENV} template {template!r} is invalid: only {{environment}} "
            f"and {{service_id}} may appear ({type(error).__name__})"
        ) from None


def load_service_config(
    service_id: str,
    *,
    environment: str = DEFAULT_ENVIRONMENT,
    credentials: Any = None,
    template: str | None = None,
) -> ServiceConfig:
    """Fetch and validate ``service_id``'s configuration document.

    ``credentials`` are Google credentials for ``gs://`` (default: the ambient identity).
    Raises :class:`ConfigurationError` naming the service and the location when the document
    is missing, unreadable or invalid, and :class:`TransientError` when storage could not be
    reached.
    """
    location = config_location(service_id, environment, template)
    raw = fetch_document(location, service_id, credentials)
    return parse_service_config(raw, service_id=service_id, location=location)


def parse_service_config(raw: bytes, *, service_id: str, location: str) -> ServiceConfig:
    """Validate a configuration document's bytes."""

    def fail(reason: str) -> ConfigurationError:
        return ConfigurationError(
            f"configuration for service {service_id!r} at {location} is invalid: {reason}"
        )

    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise fail("not valid JSON") from None
    if not isinstance(document, Mapping):
        raise fail("expected a JSON object")
    unknown = sorted(set(document) - _KNOWN_KEYS)
    if unknown:
        raise fail(f"unknown keys {unknown}")
    if document.get("service_id", service_id) != service_id:
        raise fail(f"it names service {document.get('service_id')!r}")
    role_arn = document.get("service_role_arn")
    if not isinstance(role_arn, str) or not _ROLE_ARN_RE.fullmatch(role_arn):
        raise fail(
            "service_role_arn is missing or not an ARN of an IAM role "
            "(arn:aws:iam::ACCOUNT:role/NAME)"
        )
    region = document.get("aws_region")
    if region is not None and (not isinstance(region, str) or not region):
        raise fail("aws_region must be a non-empty string")
    default_from = document.get("default_from_address")
    if default_from is not None and (not isinstance(default_from, str) or "@" not in default_from):
        raise fail("default_from_address must be an email address")
    domains = document.get("allowed_from_domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
        raise fail("allowed_from_domains must be a list of domain names")
    ascii_domains = tuple(_ascii_domain(d) for d in domains)
    for original, domain in zip(domains, ascii_domains, strict=True):
        if not _DOMAIN_RE.fullmatch(domain):
            raise fail(f"allowed_from_domains: {original!r} is not a domain name")
    try:
        prefixes = _attachment_prefixes(document.get("attachment_prefixes", []))
    except GcsUriError as error:
        raise fail(f"attachment_prefixes: {error}") from None
    tenant = document.get("ses_tenant")
    if tenant is not None and (not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant)):
        raise fail("ses_tenant must be 1-64 letters, digits, hyphens or underscores")
    policy = document.get("reputation_policy")
    if policy is not None and policy not in REPUTATION_POLICIES:
        raise fail(f"reputation_policy must be one of {', '.join(REPUTATION_POLICIES)}")
    try:
        weight, max_per_day, over_daily_cap = _sharing(document)
    except ValueError as error:
        raise fail(str(error)) from None
    return ServiceConfig(
        service_id=service_id,
        service_role_arn=role_arn,
        aws_region=region,
        default_from_address=default_from,
        allowed_from_domains=ascii_domains,
        location=location,
        attachment_prefixes=prefixes,
        ses_tenant=tenant,
        reputation_policy=policy,
        weight=weight,
        max_per_day=max_per_day,
        over_daily_cap=over_daily_cap,
    )


def _sharing(document: Mapping[str, Any]) -> tuple[float, int | None, str]:
    """The document's ``weight``, ``max_per_day`` and ``over_daily_cap``, checked strictly
    (a JSON boolean is not a number here)."""
    weight = document.get("weight", 1)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not 0 < weight <= _MAX_WEIGHT
    ):
        raise ValueError(f"weight must be a number above 0 and at most {_MAX_WEIGHT:g}")
    max_per_day = document.get("max_per_day")
    if max_per_day is not None and (
        isinstance(max_per_day, bool)
        or not isinstance(max_per_day, int)
        or not 0 <= max_per_day <= _MAX_PER_DAY
    ):
        raise ValueError(f"max_per_day must be a whole number from 0 to {_MAX_PER_DAY}")
    over = document.get("over_daily_cap", "wait")
    if over not in OVER_DAILY_CAP_CHOICES:
        raise ValueError('over_daily_cap must be "wait" or "reject"')
    if "over_daily_cap" in document and max_per_day is None:
        raise ValueError("over_daily_cap needs max_per_day")
    return float(weight), max_per_day, over


def _attachment_prefixes(value: Any) -> tuple[GcsPrefix, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise GcsUriError("expected a list of gs://bucket/path/ strings")
    if len(value) > _MAX_ATTACHMENT_PREFIXES:
        raise GcsUriError(f"more than {_MAX_ATTACHMENT_PREFIXES} prefixes")
    return tuple(parse_prefix_uri(p) for p in value)


def _ascii_domain(domain: str) -> str:
    # Requests carry internationalised domains in their IDNA form; compare like with like.
    domain = domain.strip().rstrip(".").lower()
    if domain.isascii():
        return domain
    try:
        return idna_domain(domain)
    except UnicodeError:
        return domain
