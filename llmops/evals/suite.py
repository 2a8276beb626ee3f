"""The suite file format (``evals/*.yaml``): checked against a JSON Schema before anything runs."""

from __future__ import annotations

import csv
import io
from functools import cache
from pathlib import Path
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.errors import ConfigFileError
from llmops.files import (
    MAX_YAML_BYTES,
    line_of,
    parse_json,
    parse_yaml,
    read_text,
    validation_message,
)

ASSERTION_TYPES = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "icontains-any",
    "contains-all",
    "icontains-all",
    "starts-with",
    "regex",
    "is-json",
    "json-schema",
    "levenshtein",
    "python",
    "cost",
    "latency",
    "llm-rubric",
)
WORKING = "working"  # the reference that means the working-tree file


class Assertion(BaseModel):
    """One check of an output (promptfoo's names where they overlap)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        pattern="^(not-)?(" + "|".join(ASSERTION_TYPES) + ")$",
        description="An assertion type; a not- prefix negates it.",
    )
    value: Any = None
    threshold: float | None = None
    weight: float = Field(default=1.0, ge=0)
    metric: str | None = None
    provider: str | None = Field(default=None, description="llm-rubric: the judge model")

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base_type(self) -> str:
        return self.type.removeprefix("not-")


class Defaults(BaseModel):
    """Variables and assertions merged into every case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")


class Case(BaseModel):
    """One test case: variables for the prompt, and what its output must satisfy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = None
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(default=None, ge=0, le=1)


class SuiteFile(BaseModel):
    """What one ``evals/NAME.yaml`` may contain. Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    prompt: str = Field(description="A prompt name from the registry.")
    versions: list[str] | None = Field(
        default=None,
        description="References to compare: the first is the candidate, the second the "
        "baseline. 'working' is the working-tree file.",
    )
    models: list[str] | None = Field(default=None, description="Default: the prompt's model.")
    judge: str | None = Field(default=None, description="Default judge model for llm-rubric.")
    defaults: Defaults = Field(default_factory=Defaults)
    cases: list[Case] = Field(default_factory=list)
    cases_file: str | None = Field(default=None, description="JSONL or CSV, next to the suite.")
    threshold: float = Field(default=1.0, ge=0, le=1, description="Minimum pass rate.")
    alpha: float = Field(
        default=0.025,
        gt=0,
        lt=0.5,
        description="Significance level of the one-sided regression test (Holm-adjusted "
        "across the suites of one run).",
    )
    repeat: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=8, ge=1, le=256)

    @model_validator(mode="after")
    def _has_cases(self) -> SuiteFile:
        if not self.cases and not self.cases_file:
            raise ValueError("a suite needs 'cases' or 'cases_file'")
        return self


@cache
def suite_json_schema() -> dict[str, Any]:
    """The JSON Schema of suite files (``llmops eval schema`` prints it for editors)."""
    return SuiteFile.model_json_schema(by_alias=True)


class Suite(BaseModel):
    """A loaded suite: the file's settings plus every case, with ids."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    file: str
    spec: SuiteFile
    cases: list[Case]
    case_lines: dict[str, int | None] = Field(default_factory=dict)

    def case_assertions(self, case: Case) -> list[Assertion]:
        return [*self.spec.defaults.assert_, *case.assert_]

    def case_vars(self, case: Case) -> dict[str, Any]:
        return {**self.spec.defaults.vars, **case.vars}


def load_suite(path: Path) -> Suite:
    """Read, schema-check and validate a suite file; errors name the file, line and case."""
    file = str(path)
    text = read_text(path, what="suite file", max_bytes=MAX_YAML_BYTES)
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigFileError("expected a mapping of suite fields", file=file, line=1)
    _check_schema(data, file, lines)
    try:
        spec = SuiteFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc) or "suite"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigFileError(f"{where}: {message}", file=file, line=line_of(lines, loc)) from None
    for at, assertion in _assertions(spec):
        problem = assertion_problem(assertion, path.parent)
        if problem:
            line = line_of(lines, at)
            raise ConfigFileError(f"{_describe_path(data, at)}: {problem}", file=file, line=line)
    cases = list(spec.cases)
    case_lines = {}
    for index, case in enumerate(spec.cases):
        case_lines[_case_id(case, index)] = line_of(lines, ("cases", index))
    if spec.cases_file:
        extra, extra_lines = _read_cases_file(path.parent / spec.cases_file, len(cases))
        cases += extra
        case_lines.update(extra_lines)
    named = []
    seen: dict[str, int] = {}
    for index, case in enumerate(cases):
        case_id = _case_id(case, index)
        if case_id in seen:
            raise ConfigFileError(
                f"case id {case_id!r} is used twice (cases {seen[case_id] + 1} and {index + 1})",
                file=file,
                line=case_lines.get(case_id),
            )
        seen[case_id] = index
        named.append(case.model_copy(update={"id": case_id}))
    name = path.stem
    return Suite(name=name, file=file, spec=spec, cases=named, case_lines=case_lines)


def _assertions(spec: SuiteFile) -> list[tuple[tuple[Any, ...], Assertion]]:
    """Every assertion of a suite file with its path in the file."""
    found: list[tuple[tuple[Any, ...], Assertion]] = [
        (("defaults", "assert", i), a) for i, a in enumerate(spec.defaults.assert_)
    ]
    for index, case in enumerate(spec.cases):
        found += [(("cases", index, "assert", i), a) for i, a in enumerate(case.assert_)]
    return found


def assertion_problem(assertion: Assertion, base_dir: Path | None = None) -> str | None:
    """Why an assertion can never be checked (an invalid JSON Schema or regex, a value of
    the wrong kind), or None. Found when the suite is loaded, before any model call."""
    from llmops.evals.assertions import static_problem

    return static_problem(assertion, base_dir)


def _case_id(case: Case, index: int) -> str:
    return case.id or f"case-{index + 1}"


def _check_schema(data: dict[str, Any], file: str, lines: dict[tuple[Any, ...], int]) -> None:
    validator = jsonschema.Draft202012Validator(suite_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = min(errors, key=lambda e: -len(e.absolute_path))  # the most specific one
    path = tuple(error.absolute_path)
    where = _describe_path(data, path)
    message = error.message
    if error.validator == "pattern" and path and path[-1] == "type":
        message = f"unknown assertion type {error.instance!r}"
    elif error.validator == "additionalProperties":
        message = error.message.replace("Additional properties are not allowed", "unknown field")
    raise ConfigFileError(f"{where}: {message}", file=file, line=line_of(lines, path))


def _describe_path(data: dict[str, Any], path: tuple[Any, ...]) -> str:
    """``cases[3].assert[0].type`` with the case id, when the path is inside a case."""
    if len(path) >= 2 and path[0] == "cases" and isinstance(path[1], int):
        case = data["cases"][path[1]] if path[1] < len(data.get("cases") or []) else {}
        label = case.get("id") if isinstance(case, dict) and case.get("id") else f"#{path[1] + 1}"
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:])
        return f"case {label}{rest}"
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "suite"


def _read_cases_file(path: Path, offset: int) -> tuple[list[Case], dict[str, int | None]]:
    """Cases from a JSONL file (one case object per line) or a CSV file.

    CSV columns are variables, except ``id``, ``description`` and ``__expected`` (an
    assertion: ``contains: text`` style, or a plain value meaning ``equals``), as in
    promptfoo's CSV format.
    """
    file = str(path)
    if path.suffix not in (".jsonl", ".csv"):
        raise ConfigFileError("cases_file must be .jsonl or .csv", file=file)
    text = read_text(path, what="cases file")
    raw: list[tuple[int, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            item = parse_json(line, file, line=number)
            if not isinstance(item, dict):
                raise ConfigFileError("expected a JSON object per line", file=file, line=number)
            raw.append((number, item))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA, restval="")
        try:
            for row in reader:
                if _EXTRA in row:
                    raise ConfigFileError(
                        "more values than the header has columns", file=file, line=reader.line_num
                    )
                raw.append((reader.line_num, _csv_case(row)))
        except csv.Error as exc:
            raise ConfigFileError(f"invalid CSV: {exc}", file=file, line=reader.line_num) from None
    cases: list[Case] = []
    lines: dict[str, int | None] = {}
    validator = jsonschema.Draft202012Validator(suite_json_schema())
    for index, (number, item) in enumerate(raw):
        for error in validator.iter_errors({"prompt": "x", "cases": [item]}):
            where = _describe_path({"cases": [item]}, tuple(error.absolute_path))
            raise ConfigFileError(f"{where}: {error.message}", file=file, line=number)
        try:
            case = Case.model_validate(item)
        except ValidationError as exc:
            message = validation_message(exc.errors()[0], default="case")
            raise ConfigFileError(message, file=file, line=number) from None
        for position, assertion in enumerate(case.assert_):
            problem = assertion_problem(assertion, path.parent)
            if problem:
                where = _describe_path({"cases": [item]}, ("cases", 0, "assert", position))
                raise ConfigFileError(f"{where}: {problem}", file=file, line=number)
        cases.append(case)
        lines[_case_id(case, offset + index)] = number
    return cases, lines


_EXTRA = "\x00extra"  # DictReader's key for values beyond the header's columns


def _csv_case(row: dict[str, str]) -> dict[str, Any]:
    case: dict[str, Any] = {"vars": {}, "assert": []}
    for key, value in row.items():
        if key in ("id", "description"):
            case[key] = value
        elif key == "__expected":
            kind, sep, rest = value.partition(":")
            if sep and kind.strip() in ASSERTION_TYPES:
                case["assert"].append({"type": kind.strip(), "value": rest.strip()})
            elif value:
                case["assert"].append({"type": "equals", "value": value})
        else:
            case["vars"][key] = value
    return case


Role = Literal["candidate", "baseline", "other"]
