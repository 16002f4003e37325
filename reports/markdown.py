"""Markdown escaping: untrusted text (model replies, prompts, PDF titles) must stay inert text.

Markdown renderers pass raw HTML through, turn `[x](url)` / `![x](url)` into links and remote
images, and a `|` or newline breaks a table row. The Markdown template environment therefore
escapes every `{{ ... }}` by default, like HTML autoescape: `&`, `<`, `>` become entities, `|`,
backslashes and backticks are backslash-escaped, a `]` that could close a link, image or link
definition (`](`, `][`, `]:`) is escaped, and bare URLs and e-mail addresses are kept from becoming
links (GitHub-flavoured renderers link them automatically). Emphasis characters stay: they can change styling but
cannot fetch, link or break structure. Strings the report built itself as Markdown are wrapped in
`MarkdownSafe` to pass through unchanged.
"""

from __future__ import annotations

import re
from typing import Any

_SPECIALS = re.compile(r"[\\&<>|`]|\](?=[(\[:])")
_REPLACEMENTS = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`", "]": "\\]"}
_AUTOLINK_STARTS = re.compile(r"(?<=[a-z0-9]):(?=//)|(?<=\bwww)\.|@(?=\w)", re.IGNORECASE)
"""Where a GitHub-flavoured renderer turns bare text into a link: the `:` of `https://`, the `.` of `www.`,
and the `@` of an e-mail address (or of `mailto:`/`xmpp:`)."""
_AUTOLINK_BREAKS = {":": "\\:", ".": "\\.", "@": "@\u2060"}
"""Escaping the `:` and the `.` stops URL links and renders the same text; e-mail links are found after
escapes are resolved, so the `@` gets an invisible WORD JOINER after it instead."""
_BLOCK_LINE_START = re.compile(r"^([ \t]*)([#+\-=*]|\d+[.)])", re.MULTILINE)


class MarkdownSafe(str):
    """Markdown the report wrote itself; passes through the template unescaped."""


def _escape_specials(text: str) -> str:
    escaped = _SPECIALS.sub(lambda m: _REPLACEMENTS[m.group(0)[0]], text)
    return _AUTOLINK_STARTS.sub(lambda m: _AUTOLINK_BREAKS[m.group(0)], escaped)


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def escape_inline(text: Any) -> MarkdownSafe:
    """One line of inert Markdown (safe in a table cell): specials escaped, line breaks as `<br>`."""
    if isinstance(text, MarkdownSafe):
        return text
    lines = [line.strip() for line in _lines(_escape_specials(str(text)))]
    return MarkdownSafe("<br>".join(line for line in lines if line))


def quote_block(text: Any) -> MarkdownSafe:
    """Multi-line untrusted text as an escaped blockquote (`> ` on every line), paragraphs kept."""
    escaped = _BLOCK_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), _escape_specials(str(text)))
    lines = _lines(escaped.strip("\r\n")) if escaped.strip() else ["—"]
    return MarkdownSafe("\n".join(f"> {line}".rstrip() for line in lines))


def code_block(text: str, language: str = "") -> MarkdownSafe:
    """Text verbatim in a fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return MarkdownSafe(f"{fence}{language}\n{text.rstrip()}\n{fence}")


def finalize(value: Any) -> Any:
    """Jinja `finalize` hook: every printed value is escaped unless the report marked it `MarkdownSafe`."""
    if value is None:
        return ""
    return escape_inline(value)
