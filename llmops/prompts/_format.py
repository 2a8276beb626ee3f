"""The prompt file format: YAML parsed with line numbers (:mod:`llmops.files`), checked by a
strict model."""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.errors import PromptFileError
from llmops.files import Lines, line_of, parse_yaml, validation_message

Role = Literal["system", "developer", "user", "assistant"]


class Message(BaseModel):
    """One chat message of a prompt; ``content`` is a Jinja2 template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class PromptFile(BaseModel):
    """What one ``prompts/NAME.yaml`` file may contain. Unknown fields are an error."""

    # NaN and the infinities stay themselves in the canonical JSON of the version id
    # (pydantic's JSON mode would make them null: another content, the same version)
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

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


def parse_prompt_file(text: str, file: str) -> tuple[PromptFile, Lines]:
    """Parse and validate a prompt file's text. Errors name ``file`` and the line."""
    data, lines = parse_yaml(text, file, error=PromptFileError)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise PromptFileError(f"expected a mapping of fields, got {got}", file=file, line=1)
    bad = _not_text(data, ())
    if bad is not None:
        path, problem = bad
        raise PromptFileError(problem, file=file, line=line_of(lines, path) or 1)
    try:
        prompt_file = PromptFile.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, file, lines) from None
    return prompt_file, lines


def _not_text(value: Any, path: tuple[Any, ...]) -> tuple[tuple[Any, ...], str] | None:
    """The path and the problem of the first value the version id (UTF-8 JSON) cannot hold:
    a lone surrogate (YAML's ``"\\ud800"`` escape makes one, no UTF-8 file can), or
    ``!!binary`` bytes that are not UTF-8 text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            return path, f"not valid text: a lone surrogate (\\u{code:04x}) from an escape"
    elif isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return path, "!!binary data that is not UTF-8 text"
    elif isinstance(value, dict):
        for key, item in value.items():
            bad = _not_text(key, (*path, key)) or _not_text(item, (*path, key))
            if bad is not None:
                return bad
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            bad = _not_text(item, (*path, index))
            if bad is not None:
                return bad
    return None


def _describe(exc: ValidationError, file: str, lines: Lines) -> PromptFileError:
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
        message = validation_message(error)
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
