"""The client's template and gs:// attachment specs, checked as the worker reads them."""

from __future__ import annotations

import json

from worker.client import (
    AttachmentSpec,
    EmailRequestSpec,
    GcsAttachmentSpec,
    TemplateSpec,
    prepare_request,
)


def test_a_gs_attachment_is_named_and_typed_after_its_object_by_default() -> None:
    spec = GcsAttachmentSpec("gs://billing-files/out/report.csv")
    assert spec.to_dict() == {
        "filename": "report.csv",
        "content_type": "text/csv",
        "gcs": "gs://billing-files/out/report.csv",
    }


def test_a_gs_attachment_keeps_the_name_and_type_given() -> None:
    spec = GcsAttachmentSpec("gs://b/o", filename="a.bin", content_type="application/pdf")
    assert spec.to_dict() == {
        "filename": "a.bin",
        "content_type": "application/pdf",
        "gcs": "gs://b/o",
    }


def test_a_template_request_with_a_gs_attachment_passes_the_workers_check() -> None:
    spec = EmailRequestSpec(
        to=["alice@example.org"],
        service_id="billing",
        template=TemplateSpec("invoice", {"name": "Ada"}, version=2, language="de"),
        attachments=[
            AttachmentSpec("notes.txt", b"hello", "text/plain"),
            GcsAttachmentSpec("gs://billing-files/out/invoice.pdf"),
        ],
    )
    _, data = prepare_request(spec)
    document = json.loads(data)
    assert document["template"] == {
        "name": "invoice",
        "version": 2,
        "language": "de",
        "data": {"name": "Ada"},
    }
    assert document["attachments"][1]["gcs"] == "gs://billing-files/out/invoice.pdf"


def test_specs_leave_the_data_and_addresses_out_of_their_repr() -> None:
    template = TemplateSpec("invoice", {"secret": "s3cr3t"})
    attachment = GcsAttachmentSpec("gs://private-bucket/out/x.pdf")
    assert "s3cr3t" not in repr(template)
    assert "private-bucket" not in repr(attachment)
