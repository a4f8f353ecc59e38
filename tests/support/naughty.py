"""Hostile strings for template data: markup, attribute breakouts, entities, template syntax.

Our own selection in the spirit of the "big list of naughty strings": 25 payloads, each also
wrapped three ways (padded, doubled, inside quotes), 100 in all.
"""

from __future__ import annotations

_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg/onload=alert(1)>',
    "'><iframe src=javascript:alert(1)>",
    "</p><h1>injected</h1>",
    "<!--",
    "-->",
    "<![CDATA[x]]>",
    "&lt;script&gt;",
    "&#60;script&#62;",
    "&amp;&quot;&#39;",
    "{{ 7 * 7 }}",
    "{% raw %}{{ config }}{% endraw %}",
    "${7*7}",
    "javascript:alert(document.cookie)",
    "<a href='javascript:alert(1)'>x</a>",
    "\u202e<b>reversed</b>",
    "\x00<b>null</b>",
    "\ufeff<i>bom</i>",
    "<<SCRIPT>alert(1);//<</SCRIPT>",
    "<style>*{display:none}</style>",
    "<meta http-equiv=refresh content=0;url=//evil.example>",
    '"\' onmouseover="alert(1)',
    "`<b>`",
    "\U0001f600<u>😀</u>\u0301",
]

NAUGHTY_STRINGS = [
    variant
    for payload in _PAYLOADS
    for variant in (payload, f"  {payload}  ", payload * 2, f"\"{payload}'")
]
