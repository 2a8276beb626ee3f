"""``llmops prompts``: list, show, render, log, diff, promote and validate prompt files."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import typer

from llmops.cli._options import check_prompts_dir
from llmops.cli._output import emit_json, one_line, table
from llmops.config import Settings
from llmops.errors import ConfigError, LLMOpsError, PromptFileError
from llmops.files import parse_json, read_text
from llmops.text import printable

if TYPE_CHECKING:
    from llmops.prompts import PromptRegistry

app = typer.Typer(help="Prompt templates versioned in git.", no_args_is_help=True)

DirOption = typer.Option(
    None,
    "--dir",
    "-d",
    help="The prompt folder [default: $LLMOPS_PROMPTS_DIR or ./prompts].",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _registry(folder: Path | None) -> PromptRegistry:
    """The registry of ``--dir`` (or the settings' folder), which must be a folder that is
    there: every ``prompts`` command reads it, and a mistyped path is an error, not an empty
    list."""
    from llmops.prompts import PromptRegistry  # jinja2, jsonschema: only for these commands

    root = check_prompts_dir(folder if folder is not None else Settings.from_env().prompts_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such prompt folder")
    return PromptRegistry(root)


@app.command("list")
def list_(folder: Path | None = DirOption, as_json: bool = JsonOption) -> None:
    """List every prompt with its current version, model and labels."""
    registry = _registry(folder)
    labels = registry.labels()
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        try:
            prompt = registry.current(name)
        except LLMOpsError as exc:
            rows.append({"name": name, "version": None, "error": str(exc)})
            continue
        rows.append(
            {
                "name": name,
                "version": prompt.version,
                "model": prompt.model,
                "labels": labels.labels_for(name, prompt.version),
                # every label, also those on another version than the file's (production
                # still on the version before an edit): label -> version id
                "label_versions": labels.of(name),
                "description": prompt.description,
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo(f"No prompts in {registry.root}.")
        return
    table(
        ["NAME", "VERSION", "MODEL", "LABELS", "DESCRIPTION"],
        [
            [
                r["name"],
                r["version"] or "INVALID",
                r.get("model") or "",
                _labels_cell(r),
                r.get("description") or r.get("error", ""),
            ]
            for r in rows
        ],
    )


def _labels_cell(row: dict[str, Any]) -> str:
    """``production`` for a label on the listed version, ``production@840d11382f37`` for
    one that points at another version (the list shows each file's current version)."""
    version = row.get("version")
    pointed = row.get("label_versions") or {}
    return ",".join(
        label if target == version else f"{label}@{target}"
        for label, target in sorted(pointed.items())
    )


@app.command()
def show(
    ref: str = typer.Argument(..., metavar="REF", help="NAME, or NAME@label|version|commit."),
    folder: Path | None = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one prompt version: metadata, variables and templates."""
    registry = _registry(folder)
    prompt = registry.load(ref)
    labels = registry.labels().labels_for(prompt.name, prompt.version)
    info: dict[str, Any] = {
        "name": prompt.name,
        "version": prompt.version,
        "commit": prompt.commit,
        "file": prompt.file,
        "labels": labels,
        "model": prompt.model,
        "params": prompt.params,
        "description": prompt.description,
        "tags": prompt.tags,
        "variables": prompt.variables,
        "input_schema": prompt.input_schema,
        "output_schema": prompt.output_schema,
        "messages": [m.model_dump() for m in prompt.spec.message_templates()],
    }
    if as_json:
        emit_json(info)
        return
    for key in ("name", "version", "commit", "file", "labels", "model", "params", "tags"):
        value = info[key]
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        # what the file says is shown escaped (a "\x1b" in a field), as in the tables
        typer.echo(f"{key + ':':<10} {printable(str(value)) if value not in (None, '') else '-'}")
    typer.echo(f"{'variables:':<10} {printable(', '.join(prompt.variables)) or '-'}")
    if prompt.description:
        typer.echo(f"\n{printable(prompt.description.strip(), lines=True)}")
    for message in info["messages"]:
        typer.secho(f"\n[{message['role']}]", bold=True)
        typer.echo(printable(message["content"].rstrip("\n"), lines=True))


def _parse_vars(
    pairs: list[str], vars_file: Path | None, schema: dict[str, Any] | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if vars_file is not None:
        text = read_text(vars_file, what="variables file (--vars-file)")
        loaded = parse_json(text, vars_file, error=PromptFileError)
        if not isinstance(loaded, dict):
            raise PromptFileError("expected a JSON object of variables", file=vars_file, line=1)
        values.update(loaded)
    types = {
        name: (spec.get("type") if isinstance(spec, dict) else None)
        for name, spec in ((schema or {}).get("properties") or {}).items()
    }
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--var {pair!r}: expected NAME=VALUE")
        values[key] = _coerce(raw, types.get(key))
    return values


def _coerce(raw: str, declared: Any) -> Any:
    """A --var value is a string, unless the input_schema declares another JSON type."""
    if declared in (None, "string") or (isinstance(declared, list) and "string" in declared):
        return raw
    try:
        return json.loads(raw)
    except ValueError:  # not JSON, or an integer of more digits than Python reads
        return raw  # let the schema report the mismatch with the variable's name


@app.command()
def render(
    ref: str = typer.Argument(..., metavar="REF", help="NAME, or NAME@label|version|commit."),
    var: list[str] = typer.Option([], "--var", "-v", help="A variable, NAME=VALUE (repeatable)."),
    vars_file: Path | None = typer.Option(None, "--vars-file", help="A JSON object of variables."),
    folder: Path | None = DirOption,
    as_json: bool = typer.Option(False, "--json", help="Print the messages as JSON."),
) -> None:
    """Render a prompt version's chat messages with variables."""
    prompt = _registry(folder).load(ref)
    messages = prompt.render(_parse_vars(var, vars_file, prompt.input_schema))
    if as_json:
        emit_json(messages)
        return
    for index, message in enumerate(messages):
        typer.secho(f"{'' if index == 0 else chr(10)}[{message['role']}]", bold=True)
        typer.echo(message["content"].rstrip("\n"))


class _LogRow(TypedDict):
    """One version in ``llmops prompts log`` (also its --json output)."""

    version: str | None  # None: the file at that commit is malformed
    commit: str
    date: str
    author: str
    subject: str
    path: str
    content_changed: bool
    labels: list[str]
    history_cut: bool  # a shallow clone's oldest commit: it or an earlier one wrote the text


@app.command()
def log(
    name: str = typer.Argument(..., metavar="NAME", help="The prompt name."),
    folder: Path | None = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """List every version of a prompt from git history, newest first (renames followed)."""
    registry = _registry(folder)
    from llmops.prompts import split_ref

    if split_ref(name)[1] is not None:
        raise ConfigError(f"'{name}': log takes a prompt name, without '@'")
    history = registry.history(name)
    labels = registry.labels().of(name)
    rows: list[_LogRow] = [
        {
            "version": row.version,
            "commit": row.commit,
            "date": row.date.isoformat(),
            "author": row.author,
            "subject": row.subject,
            "path": row.path,
            "content_changed": row.changed,
            "labels": sorted(label for label, v in labels.items() if v == row.version),
            "history_cut": row.boundary,
        }
        for row in history
    ]
    if as_json:
        emit_json(rows)
        return
    working = registry.current(name) if registry.path_of(name).is_file() else None
    if working is not None and (not history or history[0].version != working.version):
        typer.secho(f"{working.version}  (uncommitted changes in the working tree)", fg="yellow")
    if not rows:
        typer.echo(f"'{name}' has no commits yet.")
        return
    table(
        ["VERSION", "COMMIT", "DATE", "AUTHOR", "LABELS", "SUBJECT"],
        [
            [
                (r["version"] or "INVALID") + ("" if r["content_changed"] else " (=)"),
                r["commit"][:12] + (" (*)" if r["history_cut"] else ""),
                r["date"][:19].replace("T", " "),
                r["author"],
                ",".join(r["labels"]),
                r["subject"] + ("" if r["path"] == history[0].path else f"  [{r['path']}]"),
            ]
            for r in rows
        ],
    )
    if not all(r["content_changed"] for r in rows):
        typer.echo("(=) the commit changed only comments or formatting: same version.")
    if any(r["history_cut"] for r in rows):
        typer.secho(
            f"(*) a shallow clone's history stops at {rows[-1]['commit'][:12]}: that commit "
            "or an earlier one wrote this version; `git fetch --unshallow` shows which.",
            fg="yellow",
        )


@app.command()
def diff(
    name: str = typer.Argument(..., metavar="NAME", help="The prompt name (e.g. greet)."),
    a: str = typer.Argument(
        ...,
        metavar="VERSION_A",
        help="The old version: a label (production), a version id or a commit.",
    ),
    b: str | None = typer.Argument(
        None,
        metavar="VERSION_B",
        help="The new version, the same way [default: the working tree].",
    ),
    folder: Path | None = DirOption,
) -> None:
    """Show the text diff between two versions of a prompt, VERSION_A (old) and VERSION_B
    (new; the working tree when left out)."""
    registry = _registry(folder)
    old = registry.load(f"{name}@{a}")
    new = registry.load(f"{name}@{b}" if b else name)
    if old.source == new.source:
        typer.echo(f"{name}: {a} and {b or 'the working tree'} are identical ({old.version}).")
        return
    lines = difflib.unified_diff(
        old.source.splitlines(keepends=True),
        new.source.splitlines(keepends=True),
        fromfile=f"{name}@{a} ({old.version})",
        tofile=f"{name}@{b or 'working tree'} ({new.version})",
    )
    color = sys.stdout.isatty()
    for line in lines:
        text = printable(line.rstrip("\r\n"), lines=True) + "\n"  # CRLF files too
        fg = None
        if color and not line.startswith(("+++", "---")):
            fg = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1])
        typer.secho(text, nl=False, fg=fg)


@app.command()
def promote(
    name: str = typer.Argument(..., metavar="NAME", help="The prompt name."),
    version: str = typer.Argument(
        ..., metavar="VERSION", help="A version id (or a label or commit to copy)."
    ),
    label: str = typer.Option(..., "--label", "-l", help="The label to point at it."),
    folder: Path | None = DirOption,
) -> None:
    """Point a label (e.g. production) at a version; writes prompts/labels.yaml."""
    registry = _registry(folder)
    new, previous = registry.promote(name, version, label)
    was = f" (was {previous})" if previous and previous != new else ""
    same = " (unchanged)" if previous == new else ""
    typer.echo(f"{name}: {label} -> {new}{was}{same}")
    typer.echo(f"Commit {registry.root / 'labels.yaml'} to make it take effect for everyone.")


@app.command()
def validate(folder: Path | None = DirOption) -> None:
    """Check every prompt file and labels.yaml; exit 2 on any problem (for CI)."""
    registry = _registry(folder)
    problems = registry.validate()
    for problem in problems:  # one `error:` line per problem
        typer.secho(f"error: {one_line(str(problem))}", err=True, fg="red")
    count = len(registry.names())
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {count} prompt(s).")
        raise typer.Exit(2)
    typer.echo(f"{count} prompt(s) OK.")
