"""``llmops config``: check ``llmops.yaml`` and print its JSON Schema."""

from __future__ import annotations

import json
import os

import typer

app = typer.Typer(no_args_is_help=True, help="The config file (llmops.yaml).")


@app.command("check")
def check(
    env: bool = typer.Option(
        True, "--env/--no-env", help="Also check that alert channels' variables are set."
    ),
) -> None:
    """Read llmops.yaml (or LLMOPS_CONFIG) as every command does and summarize it; exit 2
    with the file and line of the first problem. Alert channels' environment variables are
    checked too (as `llmops alerts check` needs them), unless --no-env."""
    from llmops.config import Settings
    from llmops.control.channels import build_channels

    settings = Settings.from_env()
    if env:
        build_channels(settings.alerts, os.environ)
    blocking = sum(1 for b in settings.budgets if b.action == "block")
    where = os.environ.get("LLMOPS_CONFIG") or "llmops.yaml"
    retention = settings.retention
    kept = (
        f"content {retention.content_days or 'kept'}"
        + (" days" if retention.content_days else "")
        + f", calls {retention.calls_days or 'kept'}"
        + (" days" if retention.calls_days else "")
        + f" (at least {retention.minimum_days})"
    )
    typer.echo(
        f"{where}: {len(settings.budgets)} budget(s), {blocking} blocking; "
        f"{len(settings.alerts.rules)} alert rule(s), {len(settings.alerts.channels)} "
        f"channel(s); retention: {kept}: OK"
    )


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of llmops.yaml (for editors: yaml-language-server's
    `# yaml-language-server: $schema=llmops.schema.json`)."""
    from llmops.config import config_json_schema

    typer.echo(json.dumps(config_json_schema(), indent=2))
