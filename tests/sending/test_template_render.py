"""Rendering templates: escaped HTML, every missing name reported, hostile templates bounded."""

from __future__ import annotations

import html
import itertools
import sys
import time
from collections.abc import Mapping

import pytest

from tests.support.naughty import NAUGHTY_STRINGS
from worker.sending.template_render import (
    TemplateDataInvalid,
    TemplateRenderer,
    TemplateRenderFailed,
)
from worker.sending.template_store import TemplateNotFound, TemplateVersion

_VERSIONS = itertools.count(1)
SCHEMA = {
    "type": "object",
    "required": ["name", "total"],
    "properties": {"total": {"type": "number"}},
}


def version(schema: Mapping[str, object] | None = None, **parts: str) -> TemplateVersion:
    parts.setdefault("subject", "Subject")
    parts.setdefault("text", "Text")
    return TemplateVersion("billing", "invoice", next(_VERSIONS), "en", {"en": parts}, schema)


def test_html_is_escaped_and_subject_and_text_are_not() -> None:
    template = version(subject="To {{ name }}", text="Dear {{ name }}", html="<p>{{ name }}</p>")
    rendered = TemplateRenderer().render(template, {"name": "Tom & <Jerry>"})
    assert rendered.subject == "To Tom & <Jerry>"
    assert rendered.text == "Dear Tom & <Jerry>"
    assert rendered.html == "<p>Tom &amp; &lt;Jerry&gt;</p>"


@pytest.mark.parametrize("value", NAUGHTY_STRINGS)
def test_naughty_data_never_produces_markup_in_the_html_part(value: str) -> None:
    rendered = TemplateRenderer().render(version(html="<p>{{ value }}</p>"), {"value": value})
    assert rendered.html is not None
    inside = rendered.html.removeprefix("<p>").removesuffix("</p>")
    assert not set("<>\"'") & set(inside)
    assert html.unescape(inside) == value


def test_every_missing_name_is_reported_together() -> None:
    template = version(
        subject="{{ greeting }}", text="{{ name }} {{ order.id }} {% if vip %}!{% endif %}"
    )
    with pytest.raises(TemplateDataInvalid) as caught:
        TemplateRenderer().render(template, {"order": {}})
    assert caught.value.names == ["greeting", "name", "id", "vip"]


def test_a_name_tested_with_is_defined_is_not_missing() -> None:
    template = version(text="{% if nickname is defined %}{{ nickname }}{% else %}you{% endif %}")
    assert TemplateRenderer().render(template, {}).text == "you"


def test_data_failing_the_templates_schema_names_the_fields() -> None:
    with pytest.raises(TemplateDataInvalid) as caught:
        TemplateRenderer().render(version(SCHEMA), {"total": "ten"})
    assert caught.value.names == ["name", "total"]


def test_a_language_the_template_lacks_is_not_found() -> None:
    with pytest.raises(TemplateNotFound, match="'fr'"):
        TemplateRenderer().render(version(), {}, "fr")


def test_a_loop_bomb_fails_within_its_time_bound() -> None:
    bomb = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateRenderFailed, match=r"took longer than 0\.2 s"):
        TemplateRenderer(time_limit_s=0.2).render(version(text=bomb), {})
    assert time.monotonic() - started < 1.0


def test_a_loop_over_the_datas_own_list_is_bounded_too() -> None:
    bomb = "{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRenderFailed, match="took longer"):
        TemplateRenderer(time_limit_s=0.2).render(version(text=bomb), {"l": list(range(1000))})


def test_output_past_its_bound_fails() -> None:
    bomb = "{% for i in range(10000) %}{% for j in range(10000) %}xx{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRenderFailed, match="longer than 1000 characters"):
        TemplateRenderer(max_output_chars=1000).render(version(text=bomb), {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 1000000000 }}",
        "{{ 10 ** 10 ** 10 }}",
        "{{ range(100000000) | list }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% include 'secrets.txt' %}",
        "{% import 'os' as os %}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{% for x in %}",
        "{{ items.append(1) }}",
        "{{ order.update(paid=true) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '%0999999999d' | format(1) }}",
        "{{ '{:0999999999d}'.format(1) }}",
        "{{ 'a'.ljust(999999999) }}",
        "{{ 'a'.center(big) }}",
        "{{ 'a' | center(999999999) }}",
        "{{ 'x' | indent(999999999, true) }}",
        "{{ ('a' * 100000).replace('a', 'b' * 100000) }}",
        "{{ ('a' * 100000) | replace('a', 'b' * 100000) }}",
    ],
)
def test_a_hostile_template_fails_to_render(source: str) -> None:
    with pytest.raises(TemplateRenderFailed):
        TemplateRenderer().render(
            version(text=source), {"items": [], "order": {}, "big": 999_999_999}
        )


def test_bounded_widths_and_replacements_still_render() -> None:
    text = (
        "{{ '%05d' % 42 }} {{ '{:>6}'.format(total) }} {{ name | center(9) }}|"
        "{{ 'ab'.replace('a', 'x') }}"
    )
    rendered = TemplateRenderer().render(version(text=text), {"name": "Ann", "total": 7})
    assert rendered.text == "00042      7    Ann   |xb"


def test_a_compiled_template_is_reused_for_the_same_version() -> None:
    renderer = TemplateRenderer()
    template = version(text="{{ name }}")
    assert renderer.compile(template, "en", "text") is renderer.compile(template, "en", "text")


class TraceProbe:
    """Data that notes, when the template prints it, whether the render is being traced."""

    def __init__(self) -> None:
        self.traced: list[bool] = []

    def __str__(self) -> str:
        self.traced.append(sys.gettrace() is not None)
        return "probe"


def test_a_part_without_loops_macros_or_blocks_renders_untraced() -> None:
    probe = TraceProbe()
    TemplateRenderer().render(version(text="{% if x %}{{ x }}{% endif %}"), {"x": probe})
    assert probe.traced == [False]


@pytest.mark.parametrize(
    "text",
    [
        "{% for i in range(1) %}{{ x }}{% endfor %}",
        "{% macro m() %}{{ x }}{% endmacro %}{{ m() }}",
        "{% block b %}{{ x }}{% endblock %}",
    ],
)
def test_a_part_that_can_repeat_itself_renders_traced(text: str) -> None:
    probe = TraceProbe()
    TemplateRenderer().render(version(text=text), {"x": probe})
    assert probe.traced == [True]


@pytest.mark.parametrize(
    "bomb",
    [
        "{% block a %}{{ self.a() }}{{ self.a() }}{% endblock %}",
        "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}"
        "{% call m() %}{% call m() %}{% call m() %}{% call m() %}{% call m() %}{% call m() %}"
        "{% for i in range(10000) %}{% endfor %}"
        "{% endcall %}{% endcall %}{% endcall %}{% endcall %}{% endcall %}{% endcall %}",
    ],
    ids=["a block calling itself", "nested call blocks"],
)
def test_a_recursion_bomb_fails_within_its_time_bound(bomb: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateRenderFailed):
        TemplateRenderer(time_limit_s=0.2).render(version(text=bomb), {})
    assert time.monotonic() - started < 1.0
