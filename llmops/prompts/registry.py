"""The prompt registry: prompt files in a folder, their versions from git, and labels."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from llmops.errors import (
    HistoryUnavailableError,
    LLMOpsError,
    PromptFileError,
    PromptNotFoundError,
    PromptReferenceError,
)
from llmops.files import MAX_YAML_BYTES, describe_size, line_of, read_text
from llmops.prompts._format import PromptFile, parse_prompt_file, version_id
from llmops.prompts._git import GitRepo
from llmops.prompts._labels import (
    LABELS_FILE,
    VERSION_PATTERN,
    Labels,
    label_problem,
    labels_lock,
    read_labels,
    write_labels,
)
from llmops.prompts._render import (
    check_schema,
    compile_template,
    prepare_variables,
    render_template,
)

EXTENSIONS = (".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


@dataclass(frozen=True)
class Prompt:
    """One version of one prompt, ready to render.

    ``version`` is the content hash (it exists without git); ``commit`` is the newest
    commit that wrote this content, or None when it is not committed (or no git).
    """

    name: str
    version: str
    commit: str | None
    file: str
    source: str
    spec: PromptFile = field(repr=False)
    templates: tuple[tuple[str, jinja2.Template], ...] = field(repr=False)

    @property
    def model(self) -> str | None:
        return self.spec.model

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.spec.params)

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def tags(self) -> list[str]:
        return list(self.spec.tags)

    @property
    def input_schema(self) -> dict[str, Any] | None:
        return self.spec.input_schema

    @property
    def output_schema(self) -> dict[str, Any] | None:
        return self.spec.output_schema

    @cached_property
    def plain(self) -> bool:
        """Whether rendering takes the time of the source and the variables only: every
        template plain (no loop, call, filter or operator that could repeat work:
        ``llmops.prompts.sandbox.compile_source``), and no ``input_schema`` check that can
        take longer (a ``pattern`` may backtrack, up to the render's time limit)."""
        templates = all(getattr(template, "llmops_plain", False) for _, template in self.templates)
        return templates and not _costly_check(self.input_schema)

    @property
    def ref(self) -> str:
        """A reference that loads exactly this version: ``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    @cached_property
    def variables(self) -> list[str]:
        """Every variable the templates use, sorted."""
        from jinja2 import meta

        from llmops.prompts import sandbox

        names: set[str] = set()
        for message in self.spec.message_templates():
            names |= meta.find_undeclared_variables(sandbox.parse(message.content))
        return sorted(names)

    def render(
        self, variables: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> list[dict[str, str]]:
        """Render the chat messages. Variables come as a mapping, keywords, or both."""
        values = prepare_variables(
            self.name, {**(variables or {}), **kwargs}, self.input_schema, file=self.file
        )
        return [
            {"role": role, "content": render_template(self.name, template, values)}
            for role, template in self.templates
        ]


COSTLY_KEYWORDS = frozenset({"pattern", "patternProperties"})
"""JSON Schema keywords whose check may take more than linear time in the variables (a
pattern that backtracks: up to the render's time limit)."""


def _costly_check(schema: Any) -> bool:
    """Whether ``schema`` (or a schema inside it) has a keyword of :data:`COSTLY_KEYWORDS`."""
    if isinstance(schema, dict):
        return any(
            (key in COSTLY_KEYWORDS and value is not False) or _costly_check(value)
            for key, value in schema.items()
        )
    if isinstance(schema, list):
        return any(_costly_check(item) for item in schema)
    return False


@dataclass(frozen=True)
class PromptVersion:
    """One commit in a prompt's history (``prompts log``)."""

    name: str
    version: str | None  # None when the file at that commit is malformed
    commit: str
    date: datetime
    author: str
    email: str
    subject: str
    path: str  # the file's repository path at that commit (renames are followed)
    changed: bool  # False when the commit changed only comments or formatting
    source: str = field(repr=False)
    boundary: bool = False  # a shallow clone's oldest commit: the text was written by it
    # or by an earlier commit that the clone does not have


def _build(name: str, text: str, file: str, commit: str | None) -> Prompt:
    """Parse, check and compile one prompt file's text."""
    spec, lines = parse_prompt_file(text, file)
    for schema_field in ("input_schema", "output_schema"):
        schema = getattr(spec, schema_field)
        if schema is not None:
            check_schema(
                schema, field=schema_field, file=file, line=line_of(lines, (schema_field,))
            )
    templates = []
    for index, message in enumerate(spec.message_templates()):
        path = ("messages", index, "content") if spec.messages is not None else ("template",)
        line = line_of(lines, path)
        templates.append((message.role, compile_template(message.content, file=file, line=line)))
    return Prompt(
        name=name,
        version=version_id(spec),
        commit=commit,
        file=file,
        source=text,
        spec=spec,
        templates=tuple(templates),
    )


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"support/answer@production"`` -> ``("support/answer", "production")``."""
    name, sep, version = ref.partition("@")
    if sep and not version:
        raise PromptReferenceError(f"'{ref}': nothing after '@'", prompt=name, ref=version)
    return name, (version if sep else None)


class PromptRegistry:
    """Prompt files under one folder (default ``prompts/``), with history from git."""

    def __init__(self, path: str | Path = "prompts") -> None:
        self.root = Path(path)
        self._repo: GitRepo | None = None
        self._history: dict[tuple[str, str | None], list[PromptVersion]] = {}

    def __repr__(self) -> str:
        return f"PromptRegistry({str(self.root)!r})"

    # -- files ---------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every prompt name in the folder, sorted."""
        if not self.root.is_dir():
            return []
        names = set()
        seen: set[tuple[int, int]] = set()  # folders by (device, inode): a link loop ends
        for folder, subfolders, files in os.walk(self.root, followlinks=True):
            try:
                stat = os.stat(folder)
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) in seen:
                subfolders.clear()
                continue
            seen.add((stat.st_dev, stat.st_ino))
            subfolders[:] = [f for f in subfolders if not f.startswith(".")]  # as hidden files
            for file in files:  # as path_of finds them: linked folders and files included
                path = Path(folder) / file
                rel = path.relative_to(self.root)
                if path.suffix not in EXTENSIONS or not path.is_file() or file.startswith("."):
                    continue
                if rel.as_posix() in (LABELS_FILE, "labels.yml"):
                    continue
                names.add(rel.with_suffix("").as_posix())
        return sorted(names)

    def path_of(self, name: str) -> Path:
        """The working-tree file of prompt ``name`` (it may not exist)."""
        if not _NAME.match(name) or ".." in name.split("/"):
            raise PromptNotFoundError(
                f"'{name}' is not a prompt name (use path/like/this, without the extension)",
                prompt=name,
            )
        if name == Path(LABELS_FILE).stem:  # not listed by names(): no prompt of that name
            raise PromptNotFoundError(
                f"no prompt '{name}' in {self.root}: {LABELS_FILE} is the labels file",
                prompt=name,
            )
        found = [self.root / f"{name}{ext}" for ext in EXTENSIONS]
        try:
            existing = [p for p in found if p.is_file()]
        except OSError as exc:  # a name too long for the file system, ...
            reason = (exc.strerror or type(exc).__name__).lower()
            shown = name if len(name) <= 60 else f"{name[:60]}..."
            raise PromptNotFoundError(
                f"'{shown}' is not a usable prompt name: {reason}", prompt=name
            ) from None
        if len(existing) > 1:
            raise PromptFileError(
                f"prompt '{name}' has both a .yaml and a .yml file; keep one", file=existing[0]
            )
        return existing[0] if existing else found[0]

    def current(self, name: str) -> Prompt:
        """The working-tree version of ``name``, without looking at git (fast)."""
        prompt = self._working(name)
        if prompt is None:
            raise self._not_found(name)
        return prompt

    def _working(self, name: str) -> Prompt | None:
        path = self.path_of(name)
        if not path.is_file():
            return None
        text = read_text(path, what="prompt file", max_bytes=MAX_YAML_BYTES, error=PromptFileError)
        return _build(name, text, str(path), commit=None)

    def _not_found(self, name: str) -> PromptNotFoundError:
        close = difflib.get_close_matches(name, self.names(), 3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return PromptNotFoundError(f"no prompt '{name}' in {self.root}{hint}", prompt=name)

    # -- git -----------------------------------------------------------------------

    @property
    def repo(self) -> GitRepo:
        """The git repository holding the folder; HistoryUnavailableError when none."""
        if self._repo is None:
            self._repo = GitRepo.find(self.root if self.root.is_dir() else Path.cwd())
        return self._repo

    def history(self, name: str) -> list[PromptVersion]:
        """Every commit that changed prompt ``name``, newest first, following renames."""
        repo = self.repo
        key = (name, repo.head())
        if key in self._history:
            return self._history[key]
        path = self.path_of(name)
        rel = repo.relative(path.parent.resolve() / path.name)
        commits = repo.log(rel)
        if not commits and not path.is_file():
            raise self._not_found(name)
        texts = self._texts(repo, [(c.sha, c.path) for c in commits])
        versions = [_version_or_none(name, text) for text in texts]
        rows = []
        for index, (commit, text, version) in enumerate(zip(commits, texts, versions, strict=True)):
            older = versions[index + 1] if index + 1 < len(versions) else None
            rows.append(
                PromptVersion(
                    name=name,
                    version=version,
                    commit=commit.sha,
                    date=commit.date,
                    author=commit.author,
                    email=commit.email,
                    subject=commit.subject,
                    path=commit.path,
                    changed=version is None or older != version,
                    source=text,
                    boundary=commit.boundary,
                )
            )
        self._history[key] = rows
        return rows

    @staticmethod
    def _texts(repo: GitRepo, specs: list[tuple[str, str]]) -> list[str]:
        """The files' texts at their commits; "" for one larger than a prompt file may be
        (it is not read: a malformed version, as an empty file is)."""
        sizes = repo.sizes(specs)
        small = [spec for spec, size in zip(specs, sizes, strict=True) if size is not None
                 and size <= MAX_YAML_BYTES]  # fmt: skip
        read = dict(zip(small, repo.read(small), strict=True))
        return [read.get(spec) or "" for spec in specs]

    # -- loading -------------------------------------------------------------------

    def load(self, ref: str) -> Prompt:
        """Load ``NAME`` (the working-tree file) or ``NAME@label|version|commit``."""
        name, wanted = split_ref(ref)
        working = self._working(name)
        if wanted is None:
            if working is None:
                raise self._not_found(name)
            return self._with_commit(working)
        labels = self.labels()
        version = labels.of(name).get(wanted)
        if version is not None:
            return self._by_version(name, version, working, f"label '{wanted}'")
        if re.fullmatch(VERSION_PATTERN, wanted):
            try:
                return self._by_version(name, wanted, working, "version")
            except PromptReferenceError:
                pass  # 12 hex digits may also be a commit prefix
        return self._by_commit(name, wanted, working, labels)

    def _with_commit(self, prompt: Prompt) -> Prompt:
        """The working-tree prompt, with the newest commit that wrote the same content."""
        try:
            history = self.history(prompt.name)
        except HistoryUnavailableError:
            return prompt
        if history and history[0].version == prompt.version and not history[0].boundary:
            return replace(prompt, commit=history[0].commit)
        return prompt  # not committed, or by a commit a shallow clone does not have

    def _by_version(self, name: str, version: str, working: Prompt | None, what: str) -> Prompt:
        try:
            history = self.history(name)
        except HistoryUnavailableError as exc:
            if working is not None and working.version == version:
                return working
            raise HistoryUnavailableError(
                f"loading {name}@{version} ({what}) needs git history: {exc}"
            ) from None
        for row in history:
            if row.version == version:
                wrote = None if row.boundary else row.commit  # unknown beyond a shallow cut
                return _build(name, row.source, f"{row.path}@{row.commit[:12]}", wrote)
        if working is not None and working.version == version:
            return working  # not committed yet
        if working is None and not history:
            raise self._not_found(name)
        raise PromptReferenceError(
            f"prompt '{name}' has no version {version} ({what}); see `llmops prompts log {name}`"
            + self._shallow_hint(),
            prompt=name,
            ref=version,
        )

    def _shallow_hint(self) -> str:
        """What to do when a reference is missing from a shallow clone's history."""
        try:
            shallow = self.repo.shallow
        except HistoryUnavailableError:
            return ""
        return (
            "; this is a shallow clone (git clone --depth), whose history may not reach it: "
            "fetch the whole history (`git fetch --unshallow`; in GitHub Actions, "
            "actions/checkout with `fetch-depth: 0`)"
            if shallow
            else ""
        )

    def _by_commit(self, name: str, ref: str, working: Prompt | None, labels: Labels) -> Prompt:
        try:
            repo = self.repo
        except HistoryUnavailableError as exc:
            raise HistoryUnavailableError(
                f"'{name}@{ref}' is not a label of {name}, and reading commits needs git: {exc}"
            ) from None
        sha = repo.resolve_commit(ref)
        if sha is None:
            known = sorted(labels.of(name))
            hint = f" (its labels: {', '.join(known)})" if known else ""
            if working is None and not self._history_or_empty(name):
                raise self._not_found(name)
            raise PromptReferenceError(
                f"prompt '{name}' has no label, version or commit '{ref}'{hint}"
                + self._shallow_hint(),
                prompt=name,
                ref=ref,
            )
        path = self.path_of(name)
        candidates = [row.path for row in self._history_or_empty(name)]
        candidates.append(repo.relative(path.parent.resolve() / path.name))
        for rel in dict.fromkeys(candidates):
            (size,) = repo.sizes([(sha, rel)])
            if size is not None and size > MAX_YAML_BYTES:
                limit = describe_size(MAX_YAML_BYTES)
                raise PromptFileError(
                    f"larger than {limit}, the limit for a prompt file", file=f"{rel}@{sha[:12]}"
                )
            (text,) = repo.read([(sha, rel)]) if size is not None else (None,)
            if text is not None:
                wrote = repo.last_change(rel, sha)
                if wrote in repo.boundary():
                    wrote = None  # written there or before: the shallow clone cannot tell
                return _build(name, text, f"{rel}@{sha[:12]}", wrote)
        raise PromptReferenceError(
            f"prompt '{name}' did not exist at commit {ref} ({sha[:12]})", prompt=name, ref=ref
        )

    def _history_or_empty(self, name: str) -> list[PromptVersion]:
        try:
            return self.history(name)
        except HistoryUnavailableError:
            return []

    def source(self, ref: str) -> tuple[str, str]:
        """The file text and its label (``file`` or ``file@commit``) of a reference."""
        prompt = self.load(ref)
        return prompt.source, prompt.file

    # -- labels --------------------------------------------------------------------

    def labels(self) -> Labels:
        """The labels in ``labels.yaml`` of the working tree."""
        return read_labels(self.root)

    def promote(self, name: str, ref: str, label: str) -> tuple[str, str | None]:
        """Point ``label`` of prompt ``name`` at the version ``ref`` resolves to.

        ``ref`` may be a version id, another label or a commit; a version that does not
        exist is refused. Returns ``(new version, previous version or None)``.
        """
        problem = label_problem(label)
        if problem:
            raise PromptReferenceError(problem, prompt=name, ref=label)
        prompt = self.load(f"{name}@{ref}")
        if not self.path_of(name).is_file():  # validate reports such labels as errors
            raise PromptNotFoundError(
                f"'{name}' has no prompt file in {self.root} (renamed or deleted?): "
                "labels go on a prompt that is there",
                prompt=name,
            )
        with labels_lock(self.root):  # read, change and write: one promotion at a time
            labels = self.labels()
            by_label = dict(labels.of(name))
            previous = by_label.get(label)
            by_label[label] = prompt.version
            write_labels(self.root, Labels({**labels.root, name: by_label}))
        return prompt.version, previous

    # -- checks --------------------------------------------------------------------

    def validate(self) -> list[LLMOpsError]:
        """Check every prompt file and the labels; return the problems found."""
        problems: list[LLMOpsError] = []
        for name in self.names():
            try:
                self._working(name)
            except LLMOpsError as exc:
                problems.append(exc)
        try:
            labels = self.labels()
        except LLMOpsError as exc:
            problems.append(exc)
            return problems
        labels_file = self.root / LABELS_FILE
        names = set(self.names())
        for name, by_label in labels.root.items():
            if name not in names:  # renamed or deleted: its labels point nowhere it is used
                problems.append(
                    PromptFileError(
                        f"labels of '{name}', which has no prompt file (renamed or deleted?): "
                        "move them to its new name, or remove them",
                        file=labels_file,
                    )
                )
                continue
            for label, version in by_label.items():
                try:  # as a label resolves: a version id (not a commit that looks like one)
                    working = self._working(name)
                    self._by_version(name, version, working, f"label '{label}'")
                except HistoryUnavailableError:
                    continue  # cannot be checked without git; loading it will say so
                except (PromptNotFoundError, PromptReferenceError) as exc:
                    problems.append(PromptFileError(f"label '{label}': {exc}", file=labels_file))
                except LLMOpsError:
                    continue  # the prompt file itself is broken: reported above
        return problems


def _version_or_none(name: str, text: str) -> str | None:
    """The version id of a historical file's text, or None when that text is malformed."""
    try:
        return _build(name, text, name, None).version
    except LLMOpsError:
        return None
