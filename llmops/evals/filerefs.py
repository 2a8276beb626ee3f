"""``file://`` values in suite files (assertion values, case variables), read when the suite
loads, as promptfoo reads them: ``.json``, ``.yaml`` and ``.yml`` files are parsed, any
other file is text. Paths are relative to the suite file. The suite loader's limits apply:
at most 2 MB a file, text only, YAML aliases bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.errors import ConfigError
from llmops.files import MAX_YAML_BYTES, parse_json, parse_yaml, read_text

PREFIX = "file://"
SCRIPTS = (".py", ".js", ".cjs", ".mjs", ".ts", ".cts", ".mts", ".rb")


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a ``file://`` reference."""
    return isinstance(value, str) and value.strip().startswith(PREFIX)


def read_value(value: str, base_dir: Path, cache: dict[Path, Any]) -> Any:
    """The content of the file ``value`` names: parsed for JSON and YAML, else text.
    Raises :class:`ConfigError` (a :class:`~llmops.errors.ConfigFileError` naming the
    referenced file for one that cannot be read or parsed)."""
    target = value.strip().removeprefix(PREFIX)
    if not target:
        raise ConfigError(f"{value!r} names no file")
    path = (base_dir / target).resolve()
    suffix = path.suffix.lower()
    if suffix in SCRIPTS:
        raise ConfigError(
            f"{value!r}: a script as a value is not supported here (only python and "
            "javascript assertions run code)"
        )
    if path in cache:
        return cache[path]
    text = read_text(path, what="file:// value", max_bytes=MAX_YAML_BYTES)
    data: Any
    if suffix == ".json":
        data = parse_json(text, path)
    elif suffix in (".yaml", ".yml"):
        data, _ = parse_yaml(text, path)
    else:
        data = text
    cache[path] = data
    return data
