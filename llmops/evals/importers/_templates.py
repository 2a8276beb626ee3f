"""promptfoo prompt text as llmops templates: Nunjucks to Jinja2 (the common cases), and
chat prompts written as JSON or YAML messages."""

from __future__ import annotations

import json
import re
from typing import Any

import jinja2

from llmops.prompts import sandbox

ROLES = ("system", "developer", "user", "assistant")

_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_LENGTH = re.compile(r"\b([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\.length\b")
_DUMP = re.compile(r"\|\s*dump\b(?:\s*\(\s*(\d+)\s*\))?")
_LOADERS = re.compile(r"\{%-?\s*(include|import|extends|from)\b")


def nunjucks_to_jinja(text: str) -> tuple[str, list[str]]:
    """Rewrite what Nunjucks and Jinja2 spell differently (``| dump`` is ``| tojson``,
    ``===`` is ``==``, ``x.length`` is ``x | length``, ``elseif`` is ``elif``,
    ``verbatim`` is ``raw``), then compile the result in llmops' sandbox. Returns the
    template and the problems left (empty when it compiles and needs nothing llmops lacks).
    """
    problems: list[str] = []

    def block(match: re.Match[str]) -> str:
        part = match.group(0)
        part = part.replace("!==", "!=").replace("===", "==")
        part = _DUMP.sub(
            lambda m: f"| tojson(indent={m.group(1)})" if m.group(1) else "| tojson", part
        )
        part = _LENGTH.sub(r"(\1 | length)", part)
        part = re.sub(r"\{%(-?)\s*elseif\b", r"{%\1 elif", part)
        part = re.sub(r"\{%(-?)\s*verbatim\s*(-?)%\}", r"{%\1 raw \2%}", part)
        return re.sub(r"\{%(-?)\s*endverbatim\s*(-?)%\}", r"{%\1 endraw \2%}", part)

    converted = _BLOCK.sub(block, text)
    loader = _LOADERS.search(converted)
    if loader:
        problems.append(f"uses {{% {loader.group(1)} %}}, which llmops' sandbox does not load")
    try:
        sandbox.compile_source(converted)
    except jinja2.TemplateError as exc:
        message = str(exc.message or exc)
        unknown = re.fullmatch(r"No filter named '([^']+)'\.?", message)
        if unknown and unknown.group(1) == "load":
            problems.append(
                "uses promptfoo's `load` filter (JSON.parse), which llmops lacks: give the "
                "variable as a mapping in the cases and drop `| load`"
            )
        elif unknown:
            problems.append(
                f"uses the filter {unknown.group(1)!r}, which llmops' sandbox does not have "
                "(Nunjucks' own and promptfoo's custom filters do not run in llmops)"
            )
        else:
            problems.append(f"is not a template llmops can compile: {message}")
    return converted, problems


_PLACEHOLDER = "\x00pf{}\x00"
_BARE = re.compile(r"(?<=[:\[,])(\s*)\x00pf(\d+)\x00")


def chat_messages(text: str) -> list[dict[str, Any]] | None:
    """The messages of a chat prompt written as JSON (an array of ``{role, content}``),
    as promptfoo reads a ``.json`` prompt or a raw prompt starting with ``[``; None when
    ``text`` is not one. Template expressions may sit inside strings (``"{{ q }}"``) or
    stand for a whole JSON value (``"content": {{ q | dump }}``, promptfoo's way to quote
    a variable), which becomes ``{{ q }}``."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    expressions: list[str] = []

    def hide(match: re.Match[str]) -> str:
        expressions.append(match.group(0))
        return _PLACEHOLDER.format(len(expressions) - 1)

    hidden = _BLOCK.sub(hide, stripped)
    bare: set[int] = set()

    def quote(match: re.Match[str]) -> str:
        bare.add(int(match.group(2)))
        return f'{match.group(1)}"\x00pf{match.group(2)}\x00"'

    try:
        data = json.loads(hidden.replace("\x00", "\\u0000"))
    except json.JSONDecodeError:
        try:
            data = json.loads(_BARE.sub(quote, hidden).replace("\x00", "\\u0000"))
        except json.JSONDecodeError:
            return None

    def restore(value: str) -> str:
        def back(match: re.Match[str]) -> str:
            index = int(match.group(1))
            expression = expressions[index]
            if index in bare:  # a whole JSON value: its text is the variable's text
                expression = re.sub(r"\s*" + _DUMP.pattern, "", expression)
            return expression

        return re.sub(r"\x00pf(\d+)\x00", back, value)

    return messages_from(data, restore)


def messages_from(data: Any, restore: Any = None) -> list[dict[str, Any]] | None:
    """``[{role, content}, ...]`` as llmops messages, or None when ``data`` is not that."""
    if not isinstance(data, list) or not data:
        return None
    messages = []
    for item in data:
        if not isinstance(item, dict) or "role" not in item or "content" not in item:
            return None
        content = item["content"]
        if isinstance(content, str) and restore is not None:
            content = restore(content)
        messages.append({"role": item["role"], "content": content})
    return messages
