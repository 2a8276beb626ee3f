"""The prompt file format: YAML parsed with line numbers, checked by a strict model."""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.errors import PromptFileError

Role = Literal["system", "developer", "user", "assistant"]


class Message(BaseModel):
    """One chat message of a prompt; ``content`` is a Jinja2 template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class PromptFile(BaseModel):
    """What one ``prompts/NAME.yaml`` file may contain. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    messages: list[Message] | None = None
    template: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_body(self) -> PromptFile:
        if (self.messages is None) == (self.template is None):
            raise ValueError("give exactly one of 'messages' or 'template'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must hold at least one message")
        return self

    def message_templates(self) -> list[Message]:
        """The messages to render: ``template`` is shorthand for one user message."""
        if self.messages is not None:
            return list(self.messages)
        return [Message(role="user", content=self.template or "")]


FIELDS = tuple(PromptFile.model_fields)


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping key and list item."""


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML; return the data and a map from a path of keys/indexes to a 1-based line."""
    try:
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        raise PromptFileError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise PromptFileError(f"invalid YAML: {exc}", file=file) from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), out)


def line_of(lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    """The line of the longest known prefix of ``path``."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def parse_prompt_file(text: str, file: str) -> tuple[PromptFile, dict[tuple[Any, ...], int]]:
    """Parse and validate a prompt file's text. Errors name ``file`` and the line."""
    data, lines = _parse_yaml(text, file)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise PromptFileError(f"expected a mapping of fields, got {got}", file=file, line=1)
    try:
        prompt_file = PromptFile.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, file, lines) from None
    return prompt_file, lines


def _describe(
    exc: ValidationError, file: str, lines: dict[tuple[Any, ...], int]
) -> PromptFileError:
    """Turn pydantic's first error into one line that names the field and its line."""
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    field = ".".join(str(part) for part in loc) or "(file)"
    if error["type"] == "extra_forbidden":
        name = str(loc[-1])
        hint = difflib.get_close_matches(name, FIELDS if len(loc) == 1 else ("role", "content"), 1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        message = f"unknown field '{field}'{suggestion}"
    elif error["type"] == "missing":
        message = f"missing field '{field}'"
    else:
        message = f"{field}: {error['msg']}" if loc else error["msg"].removeprefix("Value error, ")
    extra = exc.error_count() - 1
    if extra:
        message += f" (and {extra} more error{'s' if extra > 1 else ''})"
    return PromptFileError(message, file=file, line=line_of(lines, loc) if loc else 1)


def version_id(prompt_file: PromptFile) -> str:
    """The version id: 12 hex digits of the sha256 of the file's canonical content.

    The canonical content is the fields as written (not defaults), as sorted JSON, so
    comments, key order, quoting and line endings do not make a new version.
    """
    canonical = json.dumps(
        prompt_file.model_dump(mode="json", exclude_unset=True),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
