"""Strict gs:// object names and prefixes: what lies under a prefix, and every trick refused."""

from __future__ import annotations

import pytest

from worker.config.gcs_uri import GcsUriError, parse_object_uri, parse_prefix_uri


def within(uri: str, prefix: str) -> bool:
    return parse_object_uri(uri).is_within(parse_prefix_uri(prefix))


def test_object_under_a_prefix_is_within_it() -> None:
    assert within("gs://files/billing/2026/a.pdf", "gs://files/billing/")


def test_whole_bucket_prefix_covers_every_object_in_that_bucket() -> None:
    assert within("gs://files/any/where.pdf", "gs://files/")


def test_prefix_does_not_cover_a_sibling_whose_name_starts_with_the_same_text() -> None:
    assert not within("gs://files/billingx/a.pdf", "gs://files/billing/")


def test_prefix_does_not_cover_another_bucket_whose_name_starts_with_the_same_text() -> None:
    assert not within("gs://files-other/billing/a.pdf", "gs://files/billing/")
    assert not within("gs://files-other/a.pdf", "gs://files/")


def test_prefix_does_not_cover_the_same_path_in_another_bucket() -> None:
    assert not within("gs://other/billing/a.pdf", "gs://files/billing/")


def test_object_name_is_kept_exactly_as_given() -> None:
    location = parse_object_uri("gs://files/dir/My File (1).pdf")
    assert (location.bucket, location.name) == ("files", "dir/My File (1).pdf")
    assert location.uri == "gs://files/dir/My File (1).pdf"


@pytest.mark.parametrize(
    "prefix",
    [
        "gs://files/billing",
        "gs://files",
        "gs://files//",
        "gs://files/billing//",
        "gs://files/../",
        "gs://files/billing/../",
        "gs://files/%2e%2e/",
        "gs://files/billing%2F/",
        "gs://Files/",
        "https://files/",
        "gs://f/",
        "gs://files/ billing/",
    ],
)
def test_prefix_that_is_ambiguous_or_lacks_a_trailing_slash_is_refused(prefix: str) -> None:
    with pytest.raises(GcsUriError):
        parse_prefix_uri(prefix)


@pytest.mark.parametrize(
    "uri",
    [
        "gs://files/billing/../other/a.pdf",
        "gs://files/billing/..",
        "gs://files/billing/./a.pdf",
        "gs://files/billing/%2e%2e/other/a.pdf",
        "gs://files/billing/%2E%2E/other/a.pdf",
        "gs://files/billing%2F..%2Fother/a.pdf",
        "gs://files/billing//a.pdf",
        "gs://files//billing/a.pdf",
        "gs://files/billing/a.pdf/",
        "gs://files/billing\\..\\other",
        "gs://files/billing/a.pdf?alt=media",
        "gs://files/billing/a#b",
        "gs://files/billing/[ab]",
        "gs://files/billing/\u2024\u2024/a",
        "gs://files/billing/\x00a",
        "gs://files..x/billing/a",
        "gs://FILES/billing/a",
        "gs://files",
        "gs://files/",
        "gs:/files/a",
    ],
)
def test_object_name_with_any_prefix_trick_is_refused(uri: str) -> None:
    with pytest.raises(GcsUriError):
        parse_object_uri(uri)
