"""The one place where llmops reads files that users write: prompt, labels, suite, cases,
prices and config files, and ``--vars-file``.

Every problem is a :class:`~llmops.errors.ConfigFileError` (or the subclass a caller asks
for) whose one-line message names the file, and the line when there is one:

- :func:`read_text` refuses what is not a readable UTF-8 text file of a sane size;
- :func:`parse_yaml` parses YAML with line numbers, and refuses what a config file never
  needs but an attacker (or an accident) can use to exhaust memory or the stack: alias
  expansion beyond :data:`MAX_YAML_ALIAS_NODES` nodes ("billion laughs") or
  :data:`MAX_YAML_ALIAS_CHARS` characters (one long text repeated), nesting deeper
  than :data:`MAX_YAML_DEPTH`, recursive aliases; it also refuses duplicate mapping keys,
  which YAML loaders otherwise resolve silently by keeping the last one;
- :func:`parse_json` parses JSON with the same depth limit;
- :func:`check_output_file` and :func:`check_directory` tell, before any work is done,
  whether a file can be written or a folder created.

It also creates the files llmops writes that hold prompts and answers (the database, the
journal, caches): :func:`private_dir` and :func:`private_file` make them owner-only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from llmops.errors import ConfigFileError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_YAML_ALIAS_CHARS",
    "MAX_YAML_ALIAS_NODES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "Lines",
    "check_directory",
    "check_output_file",
    "describe_size",
    "line_of",
    "parse_json",
    "parse_yaml",
    "private_dir",
    "private_file",
    "read_text",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
"""The largest file :func:`read_text` reads by default (10 MB): JSONL and CSV cases files,
``--vars-file``."""

MAX_YAML_BYTES = 2 * 1024 * 1024
"""The largest YAML file (2 MB): prompt, labels, suite, prices and config files. Parsing
YAML costs about 3 s and 80 MB of memory per MB of prose, and up to about 20 s per MB of
tiny nodes (a flow list of 300,000 numbers: 0.9 MB, 19 s on a loaded 2-core machine)."""

MAX_YAML_DEPTH = 64
"""The deepest nesting of lists and mappings in a YAML or JSON document."""

MAX_JSON_DEPTH = MAX_YAML_DEPTH

MAX_YAML_ALIAS_NODES = 100_000
"""How many nodes aliases (``*name``) may add to a YAML document once expanded."""

MAX_YAML_ALIAS_CHARS = 20 * 1024 * 1024
"""How many characters of scalars aliases may add to a YAML document once expanded: a
1 MB text anchored once and aliased 20,000 times is few nodes but 20 GB of JSON, text
or memory to whatever reads the data."""

Lines = dict[tuple[Any, ...], int]
"""A map from a path of mapping keys and list indexes to a 1-based line number."""


def describe_size(size: int) -> str:
    """``10 MB``, ``2 MB``, ``512 KB``: a limit as people write it."""
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KB"
    return f"{size:,} bytes"


_NOT_TEXT = "not a text file (binary or not UTF-8); expected a {what}"


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


# -- reading ------------------------------------------------------------------------------


def read_text(
    path: str | Path,
    *,
    what: str,
    max_bytes: int = MAX_FILE_BYTES,
    error: type[ConfigFileError] = ConfigFileError,
) -> str:
    """The text of a user's file, decoded as UTF-8 (a leading byte-order mark is dropped).

    ``what`` says what the file is for ("suite file", "prices file"); it appears in the
    messages. Raises ``error`` (a :class:`ConfigFileError`) with a one-line message when
    the file does not exist, is a directory, cannot be read, is larger than ``max_bytes``,
    or is not text: NUL bytes or invalid UTF-8 (the line of the first bad byte is named).
    Pipes and devices are read up to the same limit, so ``/dev/zero`` cannot exhaust memory.
    """
    file = Path(path)
    limit = describe_size(max_bytes)
    try:
        info = file.stat()
        if stat.S_ISDIR(info.st_mode):
            raise error(f"cannot read the {what}: it is a directory", file=file)
        if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
            raise error(f"larger than {limit}, the limit for a {what}", file=file)
        with file.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"cannot read the {what}: no such file", file=file) from None
    except NotADirectoryError:
        raise error(f"cannot read the {what}: no such file", file=file) from None
    except PermissionError:
        raise error(f"cannot read the {what}: permission denied", file=file) from None
    except OSError as exc:
        raise error(f"cannot read the {what}: {_reason(exc)}", file=file) from None
    except ValueError as exc:  # an embedded NUL character in the path
        raise error(f"cannot read the {what}: {exc}", file=file) from None
    if len(data) > max_bytes:
        raise error(f"larger than {limit}, the limit for a {what}", file=file)
    nul = data.find(b"\x00")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start if nul < 0 else min(nul, exc.start)
        line = data.count(b"\n", 0, bad) + 1
        raise error(_NOT_TEXT.format(what=what), file=file, line=line) from None
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise error(_NOT_TEXT.format(what=what), file=file, line=line)
    return text.removeprefix("\ufeff")


# -- checking paths before work is done -----------------------------------------------------


def check_output_file(path: str | Path, *, what: str) -> None:
    """Make sure ``path`` can be written as a file, without creating it: it is not a
    directory, its folder exists, and both are writable. Raises ConfigFileError."""
    file = Path(path)
    if str(file) in ("", "."):
        raise ConfigFileError(f"not a file name for the {what}", file=file)
    try:
        if file.is_dir():
            raise ConfigFileError(f"is a directory; the {what} needs a file name", file=file)
        parent = file.parent
        if not parent.exists():
            raise ConfigFileError(f"cannot write the {what}: no folder {parent}", file=file)
        if not parent.is_dir():
            raise ConfigFileError(f"cannot write the {what}: {parent} is not a folder", file=file)
        if file.exists():
            writable = os.access(file, os.W_OK)
        else:
            writable = os.access(parent, os.W_OK | os.X_OK)
    except OSError as exc:  # a name too long, a loop of symbolic links, ...
        raise ConfigFileError(f"cannot write the {what}: {_reason(exc)}", file=file) from None
    except ValueError as exc:
        raise ConfigFileError(f"cannot write the {what}: {exc}", file=file) from None
    if not writable:
        raise ConfigFileError(f"cannot write the {what}: permission denied", file=file)


def check_directory(
    path: str | Path, *, what: str, create: bool = False, writable: bool = True
) -> None:
    """Make sure ``path`` is a directory or can be created as one: it is not a file, and
    its nearest existing ancestor is a directory (``writable``: that the process may write
    in, when the folder must still be created). With ``create``, create it (and its
    parents, 0700: :func:`private_dir`) now, so that a failure (``/proc/nope``) is reported
    here, as ConfigFileError, rather than deep inside whatever needs the folder."""
    folder = Path(path)
    try:
        if folder.is_dir():
            return
        if folder.exists():
            raise ConfigFileError(f"not a directory (the {what})", file=folder)
        ancestor = folder.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ConfigFileError(
                f"cannot create the {what}: {ancestor} is not a directory", file=folder
            )
        if create:  # owner-only: what llmops keeps in its folders holds prompts and answers
            private_dir(folder)
        elif writable and not os.access(ancestor, os.W_OK | os.X_OK):
            raise ConfigFileError(f"cannot create the {what}: permission denied", file=folder)
    except PermissionError:
        raise ConfigFileError(f"cannot create the {what}: permission denied", file=folder) from None
    except OSError as exc:
        raise ConfigFileError(f"cannot create the {what}: {_reason(exc)}", file=folder) from None
    except ValueError as exc:
        raise ConfigFileError(f"not a usable {what}: {exc}", file=folder) from None


# -- YAML -----------------------------------------------------------------------------------

# libyaml's event parser is about 4x faster than PyYAML's pure-Python one. But `yaml` does
# not export CParser (it is yaml._yaml.CParser), so this import fails and the pure-Python
# parser below is the one used. (libyaml's words some errors differently, e.g. its own
# nesting limit, so switching is a change of its own.) Type checkers see libyaml's class,
# which types-PyYAML declares; the two have the same methods.
if TYPE_CHECKING:
    from yaml._yaml import CParser as _EventParser
else:
    try:
        from yaml import CParser as _EventParser
    except ImportError:  # always, see above

        class _EventParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
            """PyYAML's pure-Python event parser, made as libyaml's is."""

            def __init__(self, stream):
                yaml.reader.Reader.__init__(self, stream)
                yaml.scanner.Scanner.__init__(self)
                yaml.parser.Parser.__init__(self)


class _LimitError(yaml.MarkedYAMLError):
    """A document that is valid YAML but breaks one of our limits."""


def _start(event: yaml.Event | None) -> yaml.Mark | None:
    """Where an event starts. (libyaml's events carry libyaml's Mark, which has the fields
    of PyYAML's; types-PyYAML's MarkedYAMLError is typed to take PyYAML's only.)"""
    return cast("yaml.Mark | None", event.start_mark if event is not None else None)


class _LineLoader(
    yaml.composer.Composer,
    _EventParser,
    yaml.constructor.SafeConstructor,
    yaml.resolver.Resolver,
):
    """A safe loader that composes the node tree in Python (so it can count and check it)
    over libyaml's event parser when available.

    While composing it refuses nesting deeper than ``max_depth`` (before Python's recursion
    limit can be reached), aliases to a node that is still open (a recursive structure),
    alias expansion beyond ``max_alias_nodes`` nodes or ``max_alias_chars`` characters of
    scalars (tracked incrementally, so a billion laughs stops at the alias that crosses the
    limit, having used almost no memory), and duplicate keys in a mapping.
    """

    def __init__(
        self, text: str, max_depth: int, max_alias_nodes: int, max_alias_chars: int
    ) -> None:
        _EventParser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.max_depth = max_depth
        self.max_alias_nodes = max_alias_nodes
        self.max_alias_chars = max_alias_chars
        self._depth = 0
        self._open: set[str] = set()
        self._sizes: dict[int, int] = {}  # id(node) -> its size with aliases expanded
        self._alias_nodes = 0
        self._chars: dict[int, int] = {}  # id(node) -> its scalars' characters, expanded
        self._alias_chars = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise _LimitError(
                    None, None, f"recursive alias *{event.anchor} (it refers to itself)",
                    _start(event),
                )  # fmt: skip
            node = super().compose_node(parent, index)
            self._alias_nodes += self._sizes.get(id(node), 1)
            self._alias_chars += self._chars.get(id(node), 0)
            if self._alias_nodes > self.max_alias_nodes:
                over = f"{self.max_alias_nodes:,} nodes (a 'billion laughs' YAML bomb?)"
            elif self._alias_chars > self.max_alias_chars:
                over = f"{self.max_alias_chars:,} characters (a YAML bomb?)"
            else:
                return node
            raise _LimitError(None, None, f"aliases expand to more than {over}", _start(event))
        self._depth += 1
        if self._depth > self.max_depth and not isinstance(event, yaml.ScalarEvent):
            raise _LimitError(
                None, None, f"nested more than {self.max_depth} levels deep", _start(event)
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.discard(anchor)
        if isinstance(node, yaml.MappingNode):
            self._check_duplicates(node)
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in children)
        self._chars[id(node)] = (
            len(node.value)
            if isinstance(node, yaml.ScalarNode)
            else sum(self._chars.get(id(child), 0) for child in children)
        )
        return node

    def _check_duplicates(self, node: yaml.MappingNode) -> None:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self._scalar_key(key_node)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue
            if first is not key_node:
                raise _LimitError(
                    None, None,
                    f"duplicate key {key_node.value!r} (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )  # fmt: skip

    def _scalar_key(self, node: yaml.ScalarNode) -> Any:
        """The key as the constructed mapping will hold it (``1``, ``1.0`` and ``true``
        collide in a Python dict, so they count as duplicates)."""
        constructor = self.yaml_constructors.get(node.tag)
        if constructor is None:
            return ("?", node.tag, node.value)
        try:
            value = constructor(self, node)
        except (yaml.YAMLError, ValueError, TypeError):
            return ("?", node.tag, node.value)
        if isinstance(value, float) and math.isnan(value):
            return ("nan", node.value)
        return value


def _core_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    """The implicit types of YAML 1.2's core schema (what JavaScript's js-yaml reads):
    PyYAML's resolvers without YAML 1.1's booleans (``yes``, ``no``, ``on``, ``off``),
    base-60 numbers (``1:30``) and ``0``-prefixed octals, with 1.2's ``0o`` octals."""
    replaced = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    core = [
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
        (
            "tag:yaml.org,2002:int",
            re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
            "-+0123456789",
        ),
        (
            "tag:yaml.org,2002:float",
            re.compile(
                r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
            ),
            "-+0123456789.",
        ),
    ]
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, entries in yaml.resolver.Resolver.yaml_implicit_resolvers.items():
        kept = [(tag, pattern) for tag, pattern in entries if tag not in replaced]
        if kept:
            resolvers[first] = kept
    for tag, pattern, firsts in core:
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, pattern))
    return resolvers


def _core_int(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 core integer: decimal, ``0o`` octal or ``0x`` hexadecimal."""
    value = str(loader.construct_scalar(node))
    if value.startswith("0o"):
        return int(value[2:], 8)
    return int(value, 16) if value.startswith("0x") else int(value)


def _core_constructors() -> dict[Any, Any]:
    """SafeConstructor's constructors, with :func:`_core_int` for integers."""
    constructors = dict(yaml.constructor.SafeConstructor.yaml_constructors)
    constructors["tag:yaml.org,2002:int"] = _core_int
    return constructors


class _CoreLineLoader(_LineLoader):
    """:class:`_LineLoader` with YAML 1.2's core schema (``parse_yaml(..., core=True)``)."""

    yaml_implicit_resolvers = _core_resolvers()
    yaml_constructors = _core_constructors()


def parse_yaml(
    text: str,
    file: str | Path,
    *,
    error: type[ConfigFileError] = ConfigFileError,
    max_depth: int = MAX_YAML_DEPTH,
    max_alias_nodes: int = MAX_YAML_ALIAS_NODES,
    max_alias_chars: int = MAX_YAML_ALIAS_CHARS,
    max_chars: int = MAX_YAML_BYTES,
    core: bool = False,
) -> tuple[Any, Lines]:
    """Parse one YAML document safely; return the data and the line of every key and item.

    Raises ``error`` naming ``file`` and the line for invalid YAML, a duplicate key,
    nesting deeper than ``max_depth``, a recursive alias, or aliases that would expand to
    more than ``max_alias_nodes`` nodes or ``max_alias_chars`` characters. Text longer than
    ``max_chars`` is refused unread. Scalars resolve as YAML 1.1 (PyYAML's, and llmops' own
    files'), or with ``core`` as YAML 1.2's core schema (files written for JavaScript tools:
    ``yes`` stays a string).
    """
    if len(text) > max_chars:
        limit = describe_size(max_chars)
        raise error(f"larger than {limit}, the limit for a YAML file", file=file)
    try:
        loader = (_CoreLineLoader if core else _LineLoader)(
            text, max_depth, max_alias_nodes, max_alias_chars
        )
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            problem = f"{exc.context}, {exc.problem}"
        if isinstance(exc, _LimitError):
            raise error(problem, file=file, line=line) from None
        raise error(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        character = exc.character
        code = ord(character) if isinstance(character, str) else character
        shown = f"#x{code:04x}" if isinstance(code, int) else repr(character)
        if isinstance(code, int) and 0xDC80 <= code <= 0xDCFF:  # a byte decoding could not read
            raise error(
                f"not UTF-8 text (byte 0x{code - 0xDC00:02x}): save the file as UTF-8",
                file=file,
                line=line,
            ) from None
        raise error(f"invalid YAML: unacceptable character {shown}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise error(f"invalid YAML: {message}", file=file) from None
    except RecursionError:  # not reached with a sane max_depth; never a traceback
        raise error(f"nested more than {max_depth} levels deep", file=file) from None
    except ValueError as exc:  # Python's own limit on reading an integer's digits
        digits = sys.get_int_max_str_digits()
        problem = f"a number over {digits} digits" if "digits" in str(exc) else str(exc)
        raise error(f"invalid YAML: {problem}", file=file) from None
    lines: Lines = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[Any, ...], out: Lines) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            out[(*path, key)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), out)


def line_of(lines: Lines, path: tuple[Any, ...]) -> int | None:
    """The line of the longest known prefix of ``path`` (None when nothing matches)."""
    for end in range(len(path), -1, -1):
        try:
            if path[:end] in lines:
                return lines[path[:end]]
        except TypeError:  # an unhashable part (pydantic may report one)
            continue
    return None


def validation_message(error: Mapping[str, Any], default: str = "") -> str:
    """One pydantic error as ``dotted.path: message`` (pydantic's "Value error, " prefix,
    which names an implementation detail, removed)."""
    where = ".".join(str(part) for part in error["loc"]) or default
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


# -- JSON -----------------------------------------------------------------------------------


def parse_json(
    text: str,
    file: str | Path,
    *,
    line: int | None = None,
    error: type[ConfigFileError] = ConfigFileError,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """Parse JSON text; ``error`` names the file and line for invalid JSON or nesting deeper
    than ``max_depth``. ``line`` is the file's line of ``text`` (for one line of JSONL)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise error(f"invalid JSON: {exc.msg}", file=file, line=where) from None
    except RecursionError:
        problem = f"JSON nested more than {max_depth} levels deep"
        raise error(problem, file=file, line=line) from None
    except ValueError as exc:  # Python's own limit on reading an integer's digits
        digits = sys.get_int_max_str_digits()
        problem = f"a number over {digits} digits" if "digits" in str(exc) else str(exc)
        raise error(f"invalid JSON: {problem}", file=file, line=line) from None
    if _depth_exceeds(data, max_depth):
        raise error(f"JSON nested more than {max_depth} levels deep", file=file, line=line)
    return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return False


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by its owner only (0700)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    return path


def write_private(path: str | Path, text: str, *, what: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600): reports hold prompts
    and answers. An existing file is truncated and its mode tightened too. Raises
    ConfigFileError naming the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:  # checked before; the folder may have changed since
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigFileError(f"cannot write the {what}: {reason}", file=path) from None


def private_file(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only (0600), unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
