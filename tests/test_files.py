"""``llmops.files``: reading users' files safely (size, binary, YAML bombs, duplicate keys)."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from llmops.errors import ConfigFileError, PromptFileError
from llmops.files import (
    MAX_YAML_ALIAS_CHARS,
    MAX_YAML_ALIAS_NODES,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    check_directory,
    check_output_file,
    describe_size,
    line_of,
    parse_json,
    parse_yaml,
    read_text,
)

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def yaml_error(text: str, **kwargs) -> ConfigFileError:
    with pytest.raises(ConfigFileError) as info:
        parse_yaml(text, "f.yaml", **kwargs)
    return info.value


# -- read_text ------------------------------------------------------------------------------


def test_read_text_reads_utf8_and_drops_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_bytes("\ufeffname: café\n".encode())
    assert read_text(path, what="test file") == "name: café\n"


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"\x00\x01\x02", 1),
        (b"a: 1\nb: 2\nc: \x00\n", 3),
        (b"a: 1\nb: caf\xe9\n", 2),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 1),
        (b"ok\n" * 5 + b"\xff\xfe", 6),
    ],
)
def test_binary_or_not_utf8_is_refused_with_the_line(tmp_path: Path, content, line) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigFileError) as info:
        read_text(path, what="prompt file")
    assert info.value.line == line
    assert str(info.value) == (
        f"{path}:{line}: not a text file (binary or not UTF-8); expected a prompt file"
    )


def test_missing_directory_and_too_large(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the suite file: no such file"):
        read_text(tmp_path / "nope.yaml", what="suite file")
    with pytest.raises(ConfigFileError, match="no such file"):
        read_text(tmp_path / "nope" / "deeper.yaml", what="suite file")
    with pytest.raises(ConfigFileError, match="cannot read the suite file: it is a directory"):
        read_text(tmp_path, what="suite file")
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(2048 + 1)
    with pytest.raises(ConfigFileError, match=r"larger than 2 KB, the limit for a suite file"):
        read_text(big, what="suite file", max_bytes=2048)
    exact = tmp_path / "exact.yaml"
    exact.write_text("x" * 2048)
    assert len(read_text(exact, what="suite file", max_bytes=2048)) == 2048


def test_a_device_or_pipe_is_read_only_up_to_the_limit() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigFileError, match="larger than 1 KB"):
        read_text("/dev/zero", what="vars file", max_bytes=1024)
    assert time.monotonic() - started < 1


def test_the_error_class_is_the_callers(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_bytes(b"\x00")
    with pytest.raises(PromptFileError):
        read_text(tmp_path / "p.yaml", what="prompt file", error=PromptFileError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    with pytest.raises(ConfigFileError, match="permission denied"):
        read_text(path, what="prices file")


def test_describe_size() -> None:
    assert describe_size(10 * 1024 * 1024) == "10 MB"
    assert describe_size(512 * 1024) == "512 KB"
    assert describe_size(1000) == "1,000 bytes"


# -- parse_yaml -----------------------------------------------------------------------------


def test_lines_of_keys_and_items() -> None:
    data, lines = parse_yaml("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert data == {"a": 1, "b": ["x", {"c": 2}]}
    assert lines[("a",)] == 1 and lines[("b", 0)] == 3 and lines[("b", 1, "c")] == 4
    assert line_of(lines, ("b", 1, "c", "deeper")) == 4
    assert line_of(lines, ("zzz",)) == 1  # the document itself
    assert line_of(lines, ({"unhashable": 1},)) == 1


def test_billion_laughs_fails_fast_and_small() -> None:
    assert len(BILLION_LAUGHS) < 1100
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = yaml_error(BILLION_LAUGHS)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "aliases expand to more than 100,000 nodes" in str(error)
    assert error.file == "f.yaml" and error.line == 6  # the alias that crossed the limit
    assert elapsed < 1 and peak < 10 * 1024 * 1024


def test_core_schema_reads_scalars_as_yaml_1_2() -> None:
    """``core=True`` (files written for JavaScript tools, read as js-yaml reads them):
    YAML 1.1's yes/no/on/off and base-60 numbers stay text, ``010`` is ten; the limits
    hold as they do for llmops' own files."""
    text = "a: Yes\nb: off\nc: 1:30\nd: 010\ne: 0o10\nf: 0x1F\ng: true\nh: 1.5e3\ni: ~\n"
    data, lines = parse_yaml(text, "f.yaml", core=True)
    assert data == {"a": "Yes", "b": "off", "c": "1:30", "d": 10, "e": 8, "f": 31, "g": True,
                    "h": 1500.0, "i": None}  # fmt: skip
    assert lines[("c",)] == 3
    assert parse_yaml(text, "f.yaml")[0]["a"] is True  # llmops' own files: YAML 1.1
    with pytest.raises(ConfigFileError, match="aliases expand to more than"):
        parse_yaml(BILLION_LAUGHS, "f.yaml", core=True)


def test_aliases_within_the_budget_work() -> None:
    text = "base: &b {model: m, temperature: 0.2}\n" + "".join(f"c{i}: *b\n" for i in range(100))
    data, _ = parse_yaml(text, "f.yaml")
    assert data["c99"] == {"model": "m", "temperature": 0.2}
    small = yaml_error("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", max_alias_nodes=8)
    assert "more than 8 nodes" in str(small) and small.line == 2
    assert MAX_YAML_ALIAS_NODES == 100_000


def test_a_long_text_aliased_many_times_fails_fast_and_small() -> None:
    """Few nodes, but each alias repeats a 1 MB text: 20,000 of them would be 20 GB to
    whatever reads the data (a prompt's version id, `prompts show`)."""
    text = 'big: &a "' + "x" * 1_000_000 + '"\nmany: [' + ", ".join(["*a"] * 20_000) + "]\n"
    assert len(text) < MAX_YAML_BYTES
    started = time.monotonic()
    error = yaml_error(text)
    assert time.monotonic() - started < 5
    assert "aliases expand to more than 20,971,520 characters" in str(error)
    assert error.line == 2
    data, _ = parse_yaml('a: &a "xyz"\nb: [*a, *a]\n', "f.yaml", max_alias_chars=6)
    assert data["b"] == ["xyz", "xyz"]
    small = yaml_error('a: &a "xyz"\nb: [*a, *a, *a]\n', max_alias_chars=6)
    assert "more than 6 characters" in str(small)
    assert MAX_YAML_ALIAS_CHARS == 20 * 1024 * 1024


def test_merge_keys_may_override_without_being_duplicates() -> None:
    data, _ = parse_yaml("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", "f.yaml")
    assert data["d"] == {"x": 3, "y": 2}


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 10_000 + "]" * 10_000,
        "a: " + "{b: " * 10_000 + "1" + "}" * 10_000,
        "".join(" " * i + f"k{i}:\n" for i in range(1_000)) + " " * 1_000 + "v\n",
        "".join(" " * i + "-\n" for i in range(1_000)) + " " * 1_000 + "- x\n",
    ],
    ids=["flow-lists", "flow-maps", "block-maps", "block-lists"],
)
def test_deep_nesting_is_refused_before_python_recursion(text: str) -> None:
    error = yaml_error(text)
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in str(error)
    assert error.line is not None


def test_nesting_up_to_the_limit_is_fine() -> None:
    data, _ = parse_yaml("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "f.yaml")
    assert data is not None
    assert "nested more than" in str(yaml_error("[" * (MAX_YAML_DEPTH + 1) + "]" * 65))


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {b: *a}\n", "&x [*x]\n"])
def test_recursive_aliases_are_refused(text: str) -> None:
    error = yaml_error(text)
    assert "recursive alias" in str(error) and error.line == 1


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("a: 1\nb: 2\na: 3\n", "a", 3, 1),
        ("top:\n  x: 1\n  y: 2\n  x: 3\n", "x", 4, 2),
        ('a: 1\n"a": 2\n', "a", 2, 1),
        ("1: one\n1.0: two\n", "1.0", 2, 1),
        ("- {k: 1, k: 2}\n", "k", 1, 1),
    ],
)
def test_duplicate_keys_name_both_lines(text: str, key: str, line: int, first: int) -> None:
    error = yaml_error(text)
    assert str(error) == f"f.yaml:{line}: duplicate key {key!r} (first on line {first})"


def test_keys_that_only_look_alike_are_not_duplicates() -> None:
    data, _ = parse_yaml('1: int\n"1": str\nA: upper\na: lower\n', "f.yaml")
    assert data == {1: "int", "1": "str", "A": "upper", "a": "lower"}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("a: [1\n", "invalid YAML", 2),
        ("a: 1\n---\nb: 2\n", "expected a single document in the stream, but found another", 2),
        ("a: *nope\n", "found undefined alias", 1),
        ("a: 1\nb: \x07\n", "unacceptable character #x0007", 2),
    ],
)
def test_invalid_yaml_names_the_line(text: str, message: str, line: int) -> None:
    error = yaml_error(text)
    assert message in str(error) and error.line == line


def test_yaml_text_beyond_the_size_limit_is_refused_unparsed() -> None:
    assert "larger than 1 KB" in str(yaml_error("a: 1\n" * 300, max_chars=1024))


def test_parse_yaml_raises_the_callers_error_class() -> None:
    with pytest.raises(PromptFileError):
        parse_yaml(BILLION_LAUGHS, "p.yaml", error=PromptFileError)


# -- parse_json -----------------------------------------------------------------------------


def test_parse_json() -> None:
    assert parse_json('{"a": [1, 2]}', "v.json") == {"a": [1, 2]}
    with pytest.raises(ConfigFileError) as info:
        parse_json('{\n"a": }', "v.json")
    assert info.value.line == 2 and "invalid JSON" in str(info.value)
    with pytest.raises(ConfigFileError) as info:
        parse_json("[" * 100_000 + "]" * 100_000, "v.json", line=7)
    assert info.value.line == 7 and "nested more than 64" in str(info.value)
    with pytest.raises(ConfigFileError, match="nested more than 64"):
        parse_json("[" * 65 + "]" * 65, "v.json")
    assert parse_json("[" * 64 + "]" * 64, "v.json")
    with pytest.raises(ConfigFileError, match="invalid JSON: a number over 4300 digits") as info:
        parse_json('{"n": ' + "1" * 5000 + "}", "v.json", line=3)  # Python's int limit
    assert info.value.line == 3


# -- paths checked before work is done -----------------------------------------------------------


def test_check_output_file(tmp_path: Path) -> None:
    check_output_file(tmp_path / "report.json", what="--json report")
    (tmp_path / "exists.json").write_text("{}")
    check_output_file(tmp_path / "exists.json", what="--json report")
    with pytest.raises(ConfigFileError, match="is a directory"):
        check_output_file(tmp_path, what="--json report")
    with pytest.raises(ConfigFileError, match="no folder"):
        check_output_file(tmp_path / "nope" / "x.json", what="--json report")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigFileError, match="is not a folder"):
        check_output_file(tmp_path / "file" / "x.json", what="--json report")
    assert not (tmp_path / "report.json").exists()  # checking creates nothing


def test_check_directory(tmp_path: Path) -> None:
    check_directory(tmp_path, what="state folder")
    check_directory(tmp_path / "new" / "deeper", what="state folder")
    assert not (tmp_path / "new").exists()
    check_directory(tmp_path / "made", what="state folder", create=True)
    assert (tmp_path / "made").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigFileError, match=r"not a directory \(the state folder\)"):
        check_directory(tmp_path / "file", what="state folder")
    with pytest.raises(ConfigFileError, match="is not a directory"):
        check_directory(tmp_path / "file" / "sub", what="state folder")
    with pytest.raises(ConfigFileError, match="cannot create the state folder"):
        check_directory("/proc/nope/x", what="state folder", create=True)
