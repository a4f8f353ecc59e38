"""``email-worker templates push|list|render``: publish, list and preview a service's templates
(docs/formats.md, "Templates")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from worker.config.settings import SERVICE_ID_RE
from worker.ops.commands import common
from worker.ops.commands.common import EXIT_FAILURE, EXIT_USAGE, fail, settings_from_env

if TYPE_CHECKING:
    from worker.sending.template_store import TemplateStore, TemplateVersion

__all__ = ["templates"]

_EPILOG = common.exit_codes_text(
    {
        common.EXIT_OK: "success",
        EXIT_FAILURE: "template storage unreachable or unreadable, or no such template",
        EXIT_USAGE: "invalid settings or options, a template that fails its checks, or data "
        "the template refuses",
    }
)
_MANIFEST = "template.json"
_SAMPLE = "sample.json"


@click.group(epilog=_EPILOG)
def templates() -> None:
    """Publish, list and preview the email templates of a service."""


def _store(service: str) -> TemplateStore:
    from worker.sending.template_store import TemplateStore

    if not SERVICE_ID_RE.fullmatch(service):
        fail(f"{service!r} is not a service id", EXIT_USAGE)
    services = settings_from_env().services
    with _storage_errors():
        return TemplateStore.for_service(
            service, environment=services.config_environment, url=services.templates_url
        )


class _storage_errors:
    """Storage trouble as a message and exit code 1, not a traceback."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: Any, _tb: object) -> None:
        from worker.sending.errors import EmailError
        from worker.sending.template_store import TemplateNotFound

        if kind is not None and issubclass(kind, EmailError | TemplateNotFound):
            fail(getattr(error, "message", None) or str(error), EXIT_FAILURE)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as error:
        fail(f"cannot read {what} {path} ({type(error).__name__})", EXIT_USAGE)
    except ValueError:
        fail(f"{what} {path} is not valid JSON", EXIT_USAGE)


@templates.command(epilog=_EPILOG)
@click.argument("service")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def push(service: str, directory: Path) -> None:
    """Check the template in DIRECTORY and publish it as the next version for SERVICE.

    DIRECTORY is named after the template and holds template.json (default_language and an
    optional JSON Schema of the data), LANGUAGE.subject, LANGUAGE.text and optionally
    LANGUAGE.html for each language, and optionally sample.json: data the template is
    rendered with before it is published. Published versions are never changed.
    """
    from worker.sending.template_store import valid_name

    name = directory.resolve().name
    if not directory.is_dir():
        fail(f"{directory} is not a directory", EXIT_USAGE)
    if not valid_name(name):
        fail(f"{name!r} is not a template name ([a-z0-9][a-z0-9_-]*)", EXIT_USAGE)
    manifest = (directory / _MANIFEST).read_bytes() if (directory / _MANIFEST).is_file() else b""
    files = _template_files(directory)
    problems = _lint(name, manifest, files, directory / _SAMPLE)
    if problems:
        _refuse(problems)
    store = _store(service)
    with _storage_errors():
        version = store.publish(name, manifest, files)
    click.echo(f"published {service}/{name} version {version}")


def _template_files(directory: Path) -> dict[str, bytes]:
    from worker.sending.template_store import PARTS, valid_language

    files: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        if path.name in (_MANIFEST, _SAMPLE):
            continue
        language, _, part = path.name.rpartition(".")
        if not (path.is_file() and part in PARTS and valid_language(language)):
            _refuse([f"{path.name}: not LANGUAGE.subject, LANGUAGE.text or LANGUAGE.html"])
        files[path.name] = path.read_bytes()
    return files


def _lint(name: str, manifest: bytes, files: dict[str, bytes], sample: Path) -> list[str]:
    """Every problem of the template: manifest, schema, parts, and a render of the sample."""
    import jsonschema

    from worker.sending.errors import ConfigurationError
    from worker.sending.template_store import TemplateVersion, parse_manifest

    try:
        default, schema = parse_manifest(manifest or b"-", _MANIFEST)
    except ConfigurationError as error:
        return [error.message]
    problems = []
    if schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            problems.append(f"{_MANIFEST}: schema is not a valid JSON Schema: {error.message}")
    parts: dict[str, dict[str, str]] = {}
    for filename, data in files.items():
        language, _, part = filename.rpartition(".")
        try:
            parts.setdefault(language, {})[part] = data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{filename}: not UTF-8")
    for language, found in sorted(parts.items()):
        problems.extend(f"{language}: no {p} part" for p in ("subject", "text") if p not in found)
    if default not in parts:
        problems.append(f"the default language {default!r} has no parts")
    version = TemplateVersion("-", name, 1, default, parts, schema, tuple(sorted(parts)))
    return problems or _try_render(version, sample)


def _try_render(version: TemplateVersion, sample: Path) -> list[str]:
    """Compile every part, and render every language with the sample data if there is one."""
    from worker.sending.template_render import (
        TemplateDataInvalid,
        TemplateRenderer,
        TemplateRenderFailed,
    )

    renderer = TemplateRenderer()
    problems = []
    for language, parts in sorted(version.parts.items()):
        for part in parts:
            try:
                renderer.compile(version, language, part)
            except TemplateRenderFailed as error:
                problems.append(str(error))
    if problems or not sample.is_file():
        return problems
    data = _read_json(sample, "sample data")
    if not isinstance(data, dict):
        return [f"{_SAMPLE}: must be a JSON object"]
    for language in version.languages:
        try:
            renderer.render(version, data, language)
        except (TemplateDataInvalid, TemplateRenderFailed) as error:
            problems.append(f"{language} with {_SAMPLE}: {error}")
    return problems


def _refuse(problems: list[str]) -> NoReturn:
    fail("the template was not published:\n  " + "\n  ".join(problems), EXIT_USAGE)


@templates.command(name="list", epilog=_EPILOG)
@click.argument("service")
def list_templates(service: str) -> None:
    """List SERVICE's templates with their versions and the latest one's languages."""
    store = _store(service)
    with _storage_errors():
        names = store.names()
        if not names:
            click.echo(f"{service} has no templates")
        for name in names:
            versions = store.versions(name)
            if not versions:
                continue
            latest = store.load(name, versions[-1])
            click.echo(
                f"{name}  versions {', '.join(map(str, versions))}  latest: "
                f"{', '.join(latest.languages)} (default {latest.default_language})"
            )


@templates.command(epilog=_EPILOG)
@click.argument("service")
@click.argument("name")
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON file with the template's data.",
)
@click.option("--version", "version", type=click.IntRange(min=1), help="[default: the latest]")
@click.option("--language", help="[default: the template's default language]")
@click.option(
    "--html-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the HTML part here (it is not printed).",
)
def render(
    service: str,
    name: str,
    data_file: Path,
    version: int | None,
    language: str | None,
    html_out: Path | None,
) -> None:
    """Render NAME of SERVICE as the worker would send it: print the subject and text."""
    from worker.sending.template_render import (
        TemplateDataInvalid,
        TemplateRenderer,
        TemplateRenderFailed,
    )

    data = _read_json(data_file, "data")
    if not isinstance(data, dict):
        fail(f"data {data_file} must be a JSON object", EXIT_USAGE)
    store = _store(service)
    with _storage_errors():
        template = store.load(name, version)
        try:
            rendered = TemplateRenderer().render(template, data, language)
        except (TemplateDataInvalid, TemplateRenderFailed) as error:
            fail(f"{name} version {template.version}: {error}", EXIT_USAGE)
    click.echo(f"Template: {name} version {template.version}, language {rendered.language}")
    click.echo(f"Subject: {rendered.subject}\n")
    click.echo(rendered.text)
    if html_out is not None:
        html_out.write_text(rendered.html or "", encoding="utf-8")
        click.echo(f"HTML written to {html_out}" if rendered.html else "(no HTML part)", err=True)
