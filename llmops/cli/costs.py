"""``llmops costs``: re-price stored calls when prices change."""

from __future__ import annotations

from pathlib import Path

import typer

from llmops.cli._options import DatabaseOption, database_url, parse_when
from llmops.errors import ConfigError

app = typer.Typer(help="Call costs.", no_args_is_help=True)


@app.command()
def recompute(
    since: str = typer.Option(..., "--since", help="From when: 2026-11-01, an ISO time, or 7d."),
    until: str | None = typer.Option(None, "--until", help="Up to (not including) this time."),
    model: str | None = typer.Option(None, "--model", help="Only calls to this model."),
    prices: Path | None = typer.Option(
        None, "--prices", help="A prices file [default: $LLMOPS_PRICES or ./prices.yaml]."
    ),
    include_overrides: bool = typer.Option(
        False,
        "--include-overrides",
        help="Also re-price calls priced in code (price= or Gateway(prices=...)).",
    ),
    allow_unpriced: bool = typer.Option(
        False,
        "--allow-unpriced",
        help="Let calls the new prices do not cover lose their cost (default: they keep it).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report without writing."),
    url: str | None = DatabaseOption,
) -> None:
    """Price stored calls again with the current price map and your prices file."""
    from llmops.config import Settings
    from llmops.pricing.prices import PriceBook
    from llmops.pricing.recompute import recompute_costs
    from llmops.store.engine import check_schema, create_engine

    settings = Settings.from_env()
    start = parse_when(since, "--since")
    end = parse_when(until, "--until") if until else None
    if end is not None and end <= start:
        raise ConfigError(
            f"--until {until!r} ({end:%Y-%m-%d %H:%M}) is not after --since {since!r} "
            f"({start:%Y-%m-%d %H:%M} UTC)"
        )
    book = PriceBook.from_file(
        prices or settings.prices_file, remote_price_map=settings.remote_price_map
    )
    engine = create_engine(database_url(url, existing=True))  # re-prices: makes nothing
    check_schema(engine, create=False)
    report = recompute_costs(
        engine,
        book,
        since=start,
        until=end,
        model=model,
        include_overrides=include_overrides,
        allow_unpriced=allow_unpriced,
        dry_run=dry_run,
    )
    verb = "would change" if dry_run else "changed"
    typer.echo(
        f"{report.examined} call(s) examined, {verb} {report.changed}, "
        f"{report.unpriced} now unpriced, {report.approximate} approximate; total "
        f"${report.old_total_usd:.6f} -> ${report.new_total_usd:.6f}"
    )
    if report.kept:
        models = ", ".join(f"{m} ({n})" for m, n in report.kept_models.most_common(10))
        typer.secho(
            f"warning: {report.kept} call(s) kept their old cost: the new prices do not cover "
            f"{models}; add them to the prices file, or pass --allow-unpriced to drop the "
            "costs",
            err=True,
            fg=typer.colors.YELLOW,
        )
    if report.unpriced:
        typer.secho(
            f"warning: {report.unpriced} call(s) lost their cost (--allow-unpriced): their "
            "spend no longer counts",
            err=True,
            fg=typer.colors.YELLOW,
        )
