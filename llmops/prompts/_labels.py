"""``prompts/labels.yaml``: which version of each prompt a label such as ``production`` means."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, RootModel, ValidationError

from llmops.errors import PromptFileError
from llmops.files import MAX_YAML_BYTES, line_of, parse_yaml, read_text

LABELS_FILE = "labels.yaml"
VERSION_PATTERN = r"^[0-9a-f]{12}$"
LABEL_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]*$"

VersionId = Annotated[str, Field(pattern=VERSION_PATTERN)]

HEADER = """\
# Labels: which version of each prompt a label means (prompt -> label -> version id).
# Change it with `llmops prompts promote NAME VERSION --label LABEL` and commit it,
# so every promotion is a reviewed commit.
"""


class Labels(RootModel[dict[str, dict[str, VersionId]]]):
    """prompt name -> label -> version id."""

    root: dict[str, dict[str, VersionId]] = Field(default_factory=dict)

    def of(self, prompt: str) -> dict[str, str]:
        """The labels of one prompt."""
        return dict(self.root.get(prompt, {}))

    def labels_for(self, prompt: str, version: str) -> list[str]:
        """The labels that point at ``version`` of ``prompt``."""
        return sorted(label for label, v in self.of(prompt).items() if v == version)


def read_labels(folder: Path) -> Labels:
    """Read ``labels.yaml`` in ``folder``; a missing file means no labels."""
    path = folder / LABELS_FILE
    if not path.exists() and not path.is_symlink():
        return Labels()
    text = read_text(path, what="labels file", max_bytes=MAX_YAML_BYTES, error=PromptFileError)
    return parse_labels(text, str(path))


_CONFLICT = re.compile(r"^(<{7}|={7}|>{7})(?: |$)", re.MULTILINE)


def parse_labels(text: str, file: str) -> Labels:
    conflict = _CONFLICT.search(text)
    if conflict is not None:  # two promotions merged: git left both sides in the file
        raise PromptFileError(
            "a merge conflict is left in the labels file: keep one version id per label, "
            "remove the <<<<<<< ======= >>>>>>> lines and commit",
            file=file,
            line=text.count("\n", 0, conflict.start()) + 1,
        )
    data, lines = parse_yaml(text, file, error=PromptFileError)
    if data is None:
        return Labels()
    try:
        labels = Labels.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        shown = "/".join(str(p) for p in loc)
        if error["type"] == "string_pattern_mismatch":
            message = f"{shown}: expected a 12-hex-digit version id, got {error['input']!r}"
        else:
            message = f"expected prompt -> label -> version id; {shown or 'file'}: {error['msg']}"
        raise PromptFileError(message, file=file, line=line_of(lines, loc)) from None
    for prompt, by_label in labels.root.items():
        for label in by_label:
            problem = label_problem(label)
            if problem:
                line = line_of(lines, (prompt, label))
                raise PromptFileError(f"{prompt}/{label}: {problem}", file=file, line=line)
    return labels


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be a label name, or None when it can."""
    if re.fullmatch(VERSION_PATTERN, label):
        return f"label {label!r} would read as a version id; choose another name"
    if not re.fullmatch(LABEL_PATTERN, label):
        return f"label {label!r} must start with a letter and hold only letters, digits, _ . -"
    return None


@contextlib.contextmanager
def labels_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while its labels file is read, changed and
    written: promotions at the same time take turns instead of writing over each other's
    label (the lock is on the folder, so no lock file is left in it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise PromptFileError(
            f"cannot lock the prompt folder to change labels: {reason}", file=folder / LABELS_FILE
        ) from None
    try:
        with contextlib.suppress(OSError):  # a file system without locks (old NFS): as before
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_labels(folder: Path, labels: Labels) -> Path:
    """Write ``labels.yaml`` atomically, sorted, with an explanatory header. The file keeps
    its mode (a committed file that others read; a new one is 0644): it holds version ids,
    not prompts."""
    path = folder / LABELS_FILE
    ordered = {name: dict(sorted(ls.items())) for name, ls in sorted(labels.root.items()) if ls}
    body = yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False) if ordered else "{}\n"
    try:
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".labels-", suffix=".yaml")
        try:
            os.fchmod(fd, mode)  # mkstemp's file is 0600
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(HEADER + body)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise PromptFileError(f"cannot write the labels file: {reason}", file=path) from None
    return path
