"""The suite file format (``evals/*.yaml``): checked against a JSON Schema before anything runs."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Literal, NoReturn

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.errors import ConfigError, ConfigFileError
from llmops.evals.targets import HttpTarget, TargetSpec
from llmops.files import (
    MAX_YAML_BYTES,
    line_of,
    parse_json,
    parse_yaml,
    read_text,
    validation_message,
)

SIMILAR_TYPES = ("similar", "similar:cosine", "similar:dot", "similar:euclidean")
#: Graded by a judge model and/or embeddings, one output at a time (llmops.evals.graders).
MODEL_GRADED_TYPES = (
    "factuality",
    "model-graded-factuality",
    "model-graded-closedqa",
    "g-eval",
    "answer-relevance",
    "context-faithfulness",
    "context-recall",
    "context-relevance",
    *SIMILAR_TYPES,
)
SELECT_BEST = "select-best"  # compares the outputs of every target of a case
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
    "word-count",
    "is-refusal",
    "contains-json",
    "is-xml",
    "contains-xml",
    "javascript",
    "rouge-n",
    "bleu",
    "assert-set",
    *MODEL_GRADED_TYPES,
    SELECT_BEST,
    "finish-reason",
    "is-sql",
    "perplexity",
    "perplexity-score",
    "is-valid-openai-tools-call",
    "is-valid-openai-function-call",
    "tool-call-f1",
)
WORKING = "working"  # the reference that means the working-tree file
WHAT_IT_TESTS = "a suite needs 'prompt' (with optional 'versions'), 'prompts' or 'target'"


class Assertion(BaseModel):
    """One check of an output (promptfoo's names where they overlap)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str = Field(
        pattern="^(not-)?(" + "|".join(ASSERTION_TYPES) + ")$",
        description="An assertion type; a not- prefix negates it.",
    )
    value: Any = None
    threshold: float | None = None
    weight: float = Field(default=1.0, ge=0)
    metric: str | None = None
    provider: str | None = Field(
        default=None,
        description="llm-rubric and the model-graded assertions: the judge model; similar: "
        "the embedding model",
    )
    assert_: list[Assertion] | None = Field(
        default=None,
        alias="assert",
        description="assert-set: the assertions of the set (it passes at its threshold, "
        "else when all of them pass)",
    )
    config: dict[str, Any] | None = Field(
        default=None,
        description="Anything for a python or javascript check (context.config); "
        "factuality: the score of each category (subset, superset, agree, disagree, "
        "differButFactual)",
    )
    transform: str | None = Field(
        default=None,
        description="Python applied to the output before this assertion: an expression or "
        "body over output and context, or file://x.py:function.",
    )

    @property
    def negated(self) -> bool:
        return self.type.startswith("not-")

    @property
    def base_type(self) -> str:
        return self.type.removeprefix("not-")


class CaseOptions(BaseModel):
    """promptfoo's test ``options`` that llmops honours (others are an error)."""

    model_config = ConfigDict(extra="forbid")

    transform: str | None = Field(
        default=None,
        description="Python applied to the output before all of the case's assertions (the "
        "stored output stays the model's): an expression or body over output and context, "
        "or file://x.py:function.",
    )


class Defaults(BaseModel):
    """Variables and assertions merged into every case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    options: CaseOptions = Field(default_factory=CaseOptions)


class Case(BaseModel):
    """One test case: variables for the prompt, and what its output must satisfy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = None
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(default=None, ge=0, le=1)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Anything about the case (promptfoo's metadata)."
    )
    options: CaseOptions = Field(default_factory=CaseOptions)


class ModelEntry(BaseModel):
    """A model of ``models:`` with its own parameters and the label reports show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=200, description="The model to call.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Call parameters (temperature, max_tokens, ...) overriding the prompt's.",
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="How reports and stored runs name this target [default: the id].",
    )

    @property
    def name(self) -> str:
        return self.label or self.id


#: Parameters a model entry may not set: the runner passes them itself.
RESERVED_PARAMS = frozenset(
    {"model", "messages", "prompt", "variables", "tags", "metadata", "stream"}
)


class SuiteFile(BaseModel):
    """What one ``evals/NAME.yaml`` may contain. Unknown fields are an error."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["prompt"]},
                {"required": ["prompts"]},
                {"required": ["target"]},
            ]
        },
    )

    description: str = ""
    prompt: str | None = Field(
        default=None, description="A prompt name from the registry (or give prompts)."
    )
    prompts: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Instead of prompt and versions: several prompts, 'name' (the working "
        "tree) or 'name@ref', rendered with the same case variables. The first is the "
        "candidate, the second the baseline.",
    )
    target: str | HttpTarget | TargetSpec | None = Field(
        default=None,
        description="Instead of a prompt: an app's Python function (path/to/app.py:function, "
        "called with the case's variables) or {http: URL} for a service in any language.",
    )
    versions: list[str] | None = Field(
        default=None,
        description="References to compare: the first is the candidate, the second the "
        "baseline. 'working' is the working-tree file.",
    )
    models: list[str | ModelEntry] | None = Field(
        default=None,
        description="Default: the prompt's model. An entry is a model name or {id, params, "
        "label}: its params override the prompt's.",
    )
    judge: str | None = Field(default=None, description="Default judge model for llm-rubric.")
    embedder: str | None = Field(
        default=None,
        description="Embedding model of similar and answer-relevance (default "
        "text-embedding-3-small).",
    )
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

    @model_validator(mode="after")
    def _has_a_prompt(self) -> SuiteFile:
        given = [self.prompt is not None, self.prompts is not None, self.target is not None]
        if sum(given) > 1:
            raise ValueError(
                "give 'prompt' (with optional 'versions'), 'prompts' or 'target', only one"
            )
        if not any(given):
            raise ValueError(WHAT_IT_TESTS)
        if self.target is not None and (self.versions or self.models):
            raise ValueError("'versions' and 'models' are for prompts; a target is tested as is")
        return self

    def model_entries(self) -> list[ModelEntry] | None:
        """``models:`` as entries (a plain name is an entry without params)."""
        if self.models is None:
            return None
        return [m if isinstance(m, ModelEntry) else ModelEntry(id=m) for m in self.models]

    def prompt_refs(self) -> list[tuple[str, str]]:
        """``(prompt name, reference)`` of every listed version, in order (at least one)."""
        if self.prompts is not None:
            return [split_prompt_ref(entry) for entry in self.prompts]
        return [(str(self.prompt), ref) for ref in self.versions or [WORKING]]

    @property
    def prompt_title(self) -> str:
        """The prompt, the prompts, or the app target, as reports name them."""
        if self.target is not None:
            return target_name(self.target)
        return self.prompt if self.prompt is not None else ", ".join(self.prompts or [])


def target_name(target: str | HttpTarget | TargetSpec) -> str:
    """An app target as reports name it: its function, or its URL."""
    if isinstance(target, str):
        return target
    if isinstance(target, HttpTarget):
        return target.http
    return target.python or (target.http.http if target.http else "target")


def split_prompt_ref(entry: str) -> tuple[str, str]:
    """``name@ref`` -> ``(name, ref)``; a bare name is the working tree."""
    name, _, ref = entry.partition("@")
    return name, ref or WORKING


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

    def case_transform(self, case: Case) -> str | None:
        """The case's ``options.transform``, else the defaults' one."""
        return case.options.transform or self.spec.defaults.options.transform


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
    references: dict[Path, Any] = {}
    spec = _with_files(spec, path.parent, references, data, file, lines)
    _check_targets(spec, file, lines)
    for at, assertion in _assertions(spec):
        problem = assertion_problem(assertion, path.parent)
        if problem:
            line = line_of(lines, at)
            raise ConfigFileError(f"{_describe_path(data, at)}: {problem}", file=file, line=line)
    for at, transform in _transforms(spec):
        problem = transform_problem(transform, path.parent)
        if problem:
            line = line_of(lines, at)
            raise ConfigFileError(f"{_describe_path(data, at)}: {problem}", file=file, line=line)
    cases = list(spec.cases)
    case_lines = {}
    for index, case in enumerate(spec.cases):
        case_lines[_case_id(case, index)] = line_of(lines, ("cases", index))
    if spec.cases_file:
        extra, extra_lines = _read_cases_file(
            path.parent / spec.cases_file, len(cases), path.parent, references
        )
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


def _check_targets(spec: SuiteFile, file: str, lines: dict[tuple[Any, ...], int]) -> None:
    """``prompts:`` entries well formed and distinct, ``versions`` not beside them; model
    labels distinct and model params not ones the runner sets."""
    if spec.prompts is not None and spec.versions is not None:
        raise ConfigFileError(
            "versions: give references in prompts ('name@ref') instead, not both",
            file=file,
            line=line_of(lines, ("versions",)),
        )
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(spec.prompts or []):
        name, ref = split_prompt_ref(entry)
        if not name.strip() or entry.count("@") > 1 or entry != entry.strip():
            raise ConfigFileError(
                f"prompts[{index}]: {entry!r} is not 'name' or 'name@ref'",
                file=file,
                line=line_of(lines, ("prompts", index)),
            )
        if (name, ref) in seen:
            raise ConfigFileError(
                f"prompts[{index}]: {entry!r} is listed twice (entries {seen[(name, ref)] + 1} "
                f"and {index + 1})",
                file=file,
                line=line_of(lines, ("prompts", index)),
            )
        seen[(name, ref)] = index
    labels: dict[str, int] = {}
    for index, model in enumerate(spec.model_entries() or []):
        for key in model.params:
            if key in RESERVED_PARAMS:
                raise ConfigFileError(
                    f"models[{index}].params.{key}: set by the eval runner, not a model parameter",
                    file=file,
                    line=line_of(lines, ("models", index, "params", key)),
                )
        if model.name in labels:
            hint = "" if model.label else ": give each a label"
            raise ConfigFileError(
                f"models[{index}]: {model.name!r} is listed twice (entries {labels[model.name] + 1}"
                f" and {index + 1}){hint}",
                file=file,
                line=line_of(lines, ("models", index)),
            )
        labels[model.name] = index


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


def transform_problem(transform: str, base_dir: Path | None = None) -> str | None:
    """Why a ``transform`` cannot run (code that does not compile, a missing file or
    function), or None."""
    from llmops.evals.assertions import transform_problem as problem

    return problem(transform, base_dir)


def _transforms(spec: SuiteFile) -> list[tuple[tuple[Any, ...], str]]:
    """Every case-level transform of a suite file with its path in the file."""
    found: list[tuple[tuple[Any, ...], str]] = []
    if spec.defaults.options.transform is not None:
        found.append((("defaults", "options", "transform"), spec.defaults.options.transform))
    for index, case in enumerate(spec.cases):
        if case.options.transform is not None:
            found.append((("cases", index, "options", "transform"), case.options.transform))
    return found


class _FileProblem(Exception):
    """A ``file://`` value that cannot be read, with its path in the suite data."""

    def __init__(self, message: str, at: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.at = at


def _read(value: Any, base_dir: Path, cache: dict[Path, Any], at: tuple[Any, ...]) -> Any:
    from llmops.evals import filerefs

    if not filerefs.is_reference(value):
        return value
    try:
        return filerefs.read_value(value, base_dir, cache)
    except ConfigError as exc:
        raise _FileProblem(f"{value.strip()}: {exc}", at) from None


def _assertion_with_files(
    assertion: Assertion, base_dir: Path, cache: dict[Path, Any], at: tuple[Any, ...]
) -> Assertion:
    """The assertion with a ``file://`` value read (python and javascript excepted: theirs
    names code to run), its set's assertions too."""
    update: dict[str, Any] = {}
    if assertion.base_type not in ("python", "javascript"):
        value = _read(assertion.value, base_dir, cache, (*at, "value"))
        if value is not assertion.value:
            update["value"] = value
    if assertion.assert_:
        children = [
            _assertion_with_files(child, base_dir, cache, (*at, "assert", index))
            for index, child in enumerate(assertion.assert_)
        ]
        if any(c is not o for c, o in zip(children, assertion.assert_, strict=True)):
            update["assert_"] = children
    return assertion.model_copy(update=update) if update else assertion


def _vars_with_files(
    variables: dict[str, Any], base_dir: Path, cache: dict[Path, Any], at: tuple[Any, ...]
) -> dict[str, Any]:
    return {key: _read(value, base_dir, cache, (*at, key)) for key, value in variables.items()}


def _case_with_files(
    case: Case, base_dir: Path, cache: dict[Path, Any], at: tuple[Any, ...]
) -> Case:
    asserts = [
        _assertion_with_files(a, base_dir, cache, (*at, "assert", i))
        for i, a in enumerate(case.assert_)
    ]
    variables = _vars_with_files(case.vars, base_dir, cache, (*at, "vars"))
    return case.model_copy(update={"assert_": asserts, "vars": variables})


def _with_files(
    spec: SuiteFile,
    base_dir: Path,
    cache: dict[Path, Any],
    data: dict[str, Any],
    file: str,
    lines: dict[tuple[Any, ...], int],
) -> SuiteFile:
    """The suite with every ``file://`` assertion value and variable read."""
    try:
        defaults = spec.defaults.model_copy(
            update={
                "vars": _vars_with_files(spec.defaults.vars, base_dir, cache, ("defaults", "vars")),
                "assert_": [
                    _assertion_with_files(a, base_dir, cache, ("defaults", "assert", i))
                    for i, a in enumerate(spec.defaults.assert_)
                ],
            }
        )
        cases = [
            _case_with_files(case, base_dir, cache, ("cases", index))
            for index, case in enumerate(spec.cases)
        ]
    except _FileProblem as exc:
        where = _describe_path(data, exc.at)
        raise ConfigFileError(f"{where}: {exc}", file=file, line=line_of(lines, exc.at)) from None
    return spec.model_copy(update={"defaults": defaults, "cases": cases})


def _case_id(case: Case, index: int) -> str:
    return case.id or f"case-{index + 1}"


def _check_schema(data: dict[str, Any], file: str, lines: dict[tuple[Any, ...], int]) -> None:
    validator = jsonschema.Draft202012Validator(suite_json_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = min(errors, key=lambda e: -len(e.absolute_path))  # the most specific one
    if not error.absolute_path and error.validator == "anyOf":  # what the suite tests
        raise ConfigFileError(f"suite: {WHAT_IT_TESTS}", file=file, line=1)
    while error.context:  # anyOf (a model name or entry): the branch that got furthest
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
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


def _read_cases_file(
    path: Path, offset: int, suite_dir: Path, references: dict[Path, Any]
) -> tuple[list[Case], dict[str, int | None]]:
    """Cases from a JSONL file (one case object per line) or a CSV file.

    CSV columns are variables, except ``id``, ``description`` and promptfoo's special
    columns (see :func:`_csv_case`).
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
                raw.append((reader.line_num, _csv_case(row, file, reader.line_num)))
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
        try:
            case = _case_with_files(case, suite_dir, references, ())
        except _FileProblem as exc:
            where = _describe_path({"cases": [item]}, ("cases", 0, *exc.at))
            raise ConfigFileError(f"{where}: {exc}", file=file, line=number) from None
        if case.options.transform is not None:
            problem = transform_problem(case.options.transform, suite_dir)
            if problem:
                raise ConfigFileError(f"options.transform: {problem}", file=file, line=number)
        for position, assertion in enumerate(case.assert_):
            problem = assertion_problem(assertion, path.parent)
            if problem:
                where = _describe_path({"cases": [item]}, ("cases", 0, "assert", position))
                raise ConfigFileError(f"{where}: {problem}", file=file, line=number)
        cases.append(case)
        lines[_case_id(case, offset + index)] = number
    return cases, lines


_EXTRA = "\x00extra"  # DictReader's key for values beyond the header's columns


def _csv_case(row: dict[str, str], file: str, line: int) -> dict[str, Any]:
    """One CSV row as a case, with promptfoo's CSV semantics: columns are variables, except
    ``__expected`` and ``__expected1``, ``__expected2``, ... (assertions written as
    :func:`assertion_from_text` reads them), ``__description``, ``__metric`` (of every
    assertion of the row), ``__threshold`` (the case's), ``__metadata:KEY`` (``KEY[]``: a
    comma-separated list) and ``__config:__expectedN:threshold``. A column llmops cannot
    honour (``__prefix``, ``__suffix``, ``__providerOutput``, a misspelt special column) is
    an error naming it, never a variable."""
    case: dict[str, Any] = {"vars": {}, "assert": []}
    expected: list[tuple[int, dict[str, Any]]] = []
    thresholds: dict[int, float] = {}
    metric: str | None = None
    metadata: dict[str, Any] = {}

    def fail(message: str) -> NoReturn:
        raise ConfigFileError(message, file=file, line=line)

    for raw_key, value in row.items():
        key = (raw_key or "").strip()
        if key in ("id", "description", "__description"):
            if value:
                case[key.lstrip("_")] = value
        elif _EXPECTED.fullmatch(key):
            if value.strip():
                position = int(key.removeprefix("__expected") or "1") - 1
                expected.append((position, assertion_from_text(value, key, fail)))
        elif key == "__metric":
            metric = value.strip() or None
        elif key == "__threshold":
            if value.strip():
                case["threshold"] = _csv_number(value, key, fail)
        elif key.startswith("__metadata:") and len(key) > len("__metadata:"):
            name = key.removeprefix("__metadata:")
            if value.strip():
                if name.endswith("[]"):  # comma-separated; "\," is a comma of a value
                    fields = re.split(r"(?<!\\),", value)
                    metadata[name[:-2]] = [
                        v.replace("\\,", ",").strip() for v in fields if v.strip()
                    ]
                else:
                    metadata[name] = value
        elif key.startswith("__config:"):
            target, _, option = key.removeprefix("__config:").partition(":")
            if not _EXPECTED.fullmatch(target) or option != "threshold":
                fail(f"column {key!r}: expected __config:__expectedN:threshold")
            if value.strip():
                thresholds[int(target.removeprefix("__expected") or "1") - 1] = _csv_number(
                    value, key, fail
                )
        elif key.startswith("__") or _SINGLE_UNDERSCORE.match(key):
            hint = f" (did you mean '_{key}'?)" if not key.startswith("__") else ""
            fail(f"column {key!r}: a promptfoo column llmops does not support{hint}")
        else:
            case["vars"][key] = value
    for position, assertion in sorted(expected, key=lambda item: item[0]):
        if metric:
            assertion["metric"] = metric
        if position in thresholds:
            assertion["threshold"] = thresholds[position]
        case["assert"].append(assertion)
    if metadata:
        case["metadata"] = metadata
    return case


_EXPECTED = re.compile(r"__expected(?:[1-9][0-9]*)?")
_SINGLE_UNDERSCORE = re.compile(
    r"_(?:expected|prefix|suffix|description|providerOutput|metric|threshold|metadata|config)"
)


def _csv_number(value: str, column: str, fail: Callable[[str], NoReturn]) -> float:
    try:
        number = float(value)
    except ValueError:
        fail(f"column {column!r}: {value!r} is not a number")
    if not math.isfinite(number):
        fail(f"column {column!r}: {value!r} is not a finite number")
    return number


# promptfoo's assertion types, so that ``type: value`` in a CSV cell is read as that
# assertion (and one llmops lacks is an error) while other text is an expected output
PROMPTFOO_TYPES = (
    "agent-rubric", "answer-relevance", "bleu", "classifier", "contains", "contains-all",
    "contains-any", "contains-html", "contains-json", "contains-sql", "contains-xml",
    "context-faithfulness", "context-recall", "context-relevance", "conversation-relevance",
    "cost", "equals", "factuality", "finish-reason", "g-eval", "gleu", "guardrails",
    "icontains", "icontains-all", "icontains-any", "is-html", "is-json", "is-refusal",
    "is-sql", "is-valid-function-call", "is-valid-openai-function-call",
    "is-valid-openai-tools-call", "is-xml", "javascript", "latency", "levenshtein",
    "llm-rubric", "pi", "meteor", "model-graded-closedqa", "model-graded-factuality",
    "moderation", "perplexity", "perplexity-score", "python", "regex", "rouge-n", "ruby",
    "similar", "similar:cosine", "similar:dot", "similar:euclidean", "starts-with",
    "tool-call-f1", "skill-used", "trajectory:goal-success", "trajectory:tool-args-match",
    "trajectory:step-count", "trajectory:tool-sequence", "trajectory:tool-used",
    "trace-error-spans", "trace-span-count", "trace-span-duration", "search-rubric",
    "webhook", "word-count", "json-schema",
)  # fmt: skip
_TYPED = re.compile(
    r"(not-)?("
    + "|".join(re.escape(t) for t in sorted(PROMPTFOO_TYPES, key=len, reverse=True))
    + r")(?:\(([0-9]+(?:\.[0-9]+)?)\))?(?::(.*))?",
    re.DOTALL,
)
_LIST_TYPES = ("contains-any", "contains-all", "icontains-any", "icontains-all")
_JS_FILE = re.compile(r"file://.*\.(?:js|cjs|mjs|ts|cts|mts)(?::\w+)?")


def assertion_from_text(
    text: str, column: str = "__expected", fail: Callable[[str], NoReturn] | None = None
) -> dict[str, Any]:
    """An assertion from a CSV cell, as promptfoo reads it: ``contains: Paris``,
    ``not-icontains: sorry``, ``levenshtein(3): Paris``, ``contains-any: a, b, "c, d"``,
    ``grade: ...`` / ``llm-rubric: ...``, ``python: file.py``, ``fn:`` / ``eval:`` /
    ``javascript: ...``; any other text is the expected output (``equals``). A promptfoo
    assertion llmops does not have is an error (``fail``), never an ``equals`` check on
    the cell's text."""

    def refuse(message: str) -> NoReturn:
        if fail is not None:
            fail(message)
        raise ConfigError(message)

    cell = text.strip()
    kind: str
    value: Any
    threshold: float | None = None
    for prefix, name in (("javascript:", "javascript"), ("fn:", "javascript"),
                         ("eval:", "javascript"), ("grade:", "llm-rubric"),
                         ("llm-rubric:", "llm-rubric"), ("python:", "python")):  # fmt: skip
        if cell.startswith(prefix):
            kind, value = name, cell[len(prefix) :].strip()
            break
    else:
        if _JS_FILE.fullmatch(cell):
            kind, value = "javascript", cell
        elif cell.startswith("file://") and (cell.endswith(".py") or ".py:" in cell):
            kind, value = "python", cell
        elif (match := _TYPED.fullmatch(cell)) is not None:
            negated, base, number, rest = match.groups()
            kind = f"not-{base}" if negated else base
            value = None if rest is None else rest.strip()
            if base in _LIST_TYPES and value is not None:
                fields = next(csv.reader([value], skipinitialspace=True))
                value = [part.strip() for part in fields if part.strip()]
            threshold = float(number) if number is not None else None
        else:
            return {"type": "equals", "value": text}
    base = kind.removeprefix("not-")
    if base not in ASSERTION_TYPES:
        refuse(
            f"column {column!r}: {cell[:60]!r} is promptfoo's {base!r} assertion, which llmops "
            "does not support: write it as another assertion in the suite file"
        )
    assertion: dict[str, Any] = {"type": kind}
    if value is not None and value != "":
        assertion["value"] = _typed_value(base, value)
    if threshold is not None:
        assertion["threshold"] = threshold
    return assertion


def _typed_value(base: str, value: Any) -> Any:
    """Numbers where the assertion wants one (``cost: 0.01``, ``word-count: 50``)."""
    if base in ("cost", "latency", "word-count") and isinstance(value, str):
        try:
            return float(value) if base != "word-count" else int(float(value))
        except ValueError:
            return value
    return value


Role = Literal["candidate", "baseline", "other"]
