"""``llmops keys``: virtual keys of ``llmops serve`` (create, list, revoke)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from llmops.cli._options import DatabaseOption, database_url
from llmops.cli._output import emit_json, table
from llmops.money import DASH, usd

app = typer.Typer(no_args_is_help=True, help="Virtual keys of `llmops serve`.")


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A name for the key (recorded with calls)."),
    budget_usd_month: float | None = typer.Option(
        None, "--budget-usd-month", min=0.000001, max=1e9, help="Blocking budget per month."
    ),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated models (or prompt:NAME) the key may use."
    ),
    rpm: int | None = typer.Option(None, "--rpm", min=1, max=10_000_000, help="Requests/min."),
    tpm: int | None = typer.Option(None, "--tpm", min=1, max=10**10, help="Tokens/min."),
    url: str | None = DatabaseOption,
) -> None:
    """Create a key and print it once: only a hash of it is stored."""
    from llmops.store.engine import check_schema, create_engine
    from llmops.store.keys import create_key

    engine = create_engine(database_url(url))
    check_schema(engine)
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    key, secret = create_key(
        engine, name, datetime.now(UTC), models=allowed, rpm=rpm, tpm=tpm,
        budget_usd_month=budget_usd_month,
    )  # fmt: skip
    typer.echo(secret)
    typer.echo(
        f"Key {key.name!r} created ({key.prefix}...). It is shown only now: store it in your "
        "secret manager; llmops keeps a hash.",
        err=True,
    )


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    url: str | None = DatabaseOption,
) -> None:
    """Every key (never the key itself): name, prefix, limits, created, revoked."""
    from llmops.store.engine import check_schema, create_engine
    from llmops.store.keys import list_keys

    engine = create_engine(database_url(url, existing=True))  # only looks: makes nothing
    check_schema(engine)
    keys = list_keys(engine)
    if as_json:
        emit_json(
            [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                    "models": list(k.models) if k.models else None,
                    "rpm": k.rpm,
                    "tpm": k.tpm,
                    "budget_usd_month": k.budget_usd_month,
                }
                for k in keys
            ]
        )
        return
    if not keys:
        typer.echo("No keys: create one with `llmops keys create --name NAME`.")
        return
    table(
        ["NAME", "PREFIX", "MODELS", "RPM", "TPM", "BUDGET/MONTH", "CREATED", "REVOKED"],
        [
            [
                k.name,
                k.prefix,
                ",".join(k.models) if k.models else "any",
                str(k.rpm or DASH),
                str(k.tpm or DASH),
                usd(k.budget_usd_month) if k.budget_usd_month else DASH,
                f"{k.created_at:%Y-%m-%d}",
                f"{k.revoked_at:%Y-%m-%d}" if k.revoked_at else "",
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke(
    name: str = typer.Argument(..., metavar="NAME", help="The key's name."),
    url: str | None = DatabaseOption,
) -> None:
    """Revoke a key: servers refuse it within 5 seconds (their key cache)."""
    from llmops.store.engine import check_schema, create_engine
    from llmops.store.keys import revoke_key

    engine = create_engine(database_url(url, existing=True))  # no file: no key to revoke
    check_schema(engine)
    key = revoke_key(engine, name, datetime.now(UTC))
    typer.echo(f"Key {key.name!r} ({key.prefix}...) revoked.")
