"""Small, dependency-free output helpers shared by the CLI commands."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import typer

from llmops.jsondata import finite
from llmops.text import CONTROL, printable


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Collection[int] = ()
) -> None:
    """Print rows as columns under a header line: left-aligned, except the columns whose
    index is in ``right`` (numbers), right-aligned."""
    cells = [
        [str(h) for h in headers],
        *[["" if v is None else printable(str(v)) for v in r] for r in rows],
    ]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    line = "  ".join(
        f"{{:{'>' if column in right else '<'}{width}}}" for column, width in enumerate(widths)
    )
    typer.secho(line.format(*cells[0]).rstrip(), bold=True)
    if len(cells) > 1:  # in one write: a line at a time took 2.8 s for 180,000 rows
        typer.echo("\n".join([line.format(*row).rstrip() for row in cells[1:]]))


def emit_json(data: Any) -> None:
    """``data`` as JSON; a NaN or infinite number (which JSON has not) as null."""
    typer.echo(json.dumps(finite(data), indent=2, ensure_ascii=False, default=str))


_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula


def emit_csv(fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> None:
    """Records as CSV with a header line, for a spreadsheet as OWASP advises: every text
    cell in double quotes (a spreadsheet that splits on ``;`` or tabs keeps ``a;=SUM(1)`` in
    one cell), and one that a spreadsheet would run as a formula (a user id
    ``=HYPERLINK(...)``: it starts with ``= + - @``, a tab or a carriage return) with a
    leading ``'``. Numbers are left as they are; ``--format json`` gives every value
    unchanged."""
    writer = csv.DictWriter(
        sys.stdout, fieldnames=list(fields), lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writeheader()
    writer.writerows(
        {k: "'" + v if isinstance(v, str) and v.startswith(_FORMULA) else v for k, v in r.items()}
        for r in records
    )


MAX_MESSAGE = 2000  # characters of one error line


def one_line(message: str) -> str:
    """An error message as one printable line: line breaks become spaces, other control
    characters (a terminal escape in a file name) are shown escaped, length is capped."""
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    text = text.translate(CONTROL)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "\u2026"
    return text
