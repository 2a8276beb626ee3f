"""The support app's back office as a service of its own, in its own process.

The demo's app has two parts, as a real deployment would: the help widget that answers
customers (``support/answer``, the prompt that is rolled out during the month) and the back
office (ticket triage from emails, escalation drafts on o3, the nightly handoff summaries).
``llmops demo`` runs the back office in a child process (``python -m
llmops.demo.backoffice``) with a Gateway of its own on the same database, so the two parts
use two cores, as :class:`~llmops.demo.provider.ProviderProcess` does for the provider.
The child reads its settings as one JSON line on stdin, loads the prompts of the first
release (which the parent has made by then), runs its share of the same traffic plan
(:func:`~llmops.demo.support_app.run_month` with ``kinds=BACK_OFFICE``) and prints its
:class:`~llmops.demo.support_app.DemoStats` as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from llmops.demo.provider import Address
from llmops.demo.support_app import DemoStats
from llmops.demo.traffic import Kind

__all__ = ["BACK_OFFICE", "Address", "BackOffice", "BackOfficeSettings"]

BACK_OFFICE: tuple[Kind, ...] = ("ticket", "escalate", "summary")


@dataclass(frozen=True)
class BackOfficeSettings:
    """What the child needs: the database, the demo's folder, the plan and the providers."""

    database_url: str
    home: str
    workspace: str
    days: int
    now: str  # ISO 8601: the end of the simulated period
    calls_per_day: float
    seed: int
    working: str  # root URLs of the three simulated providers
    limited: str
    down: str


class BackOffice:
    """The child process: :meth:`start` it, then :meth:`finish` returns its stats."""

    def __init__(self, settings: BackOfficeSettings) -> None:
        self.settings = settings
        self._process: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None

    def start(self) -> None:
        # a file, not a pipe: a full pipe would block the child; closed in finish()/stop()
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", "llmops.demo.backoffice"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )
        stdin = self._process.stdin
        if stdin is not None:  # always: stdin=PIPE
            stdin.write(json.dumps(asdict(self.settings)).encode() + b"\n")
            stdin.close()

    def finish(self) -> DemoStats:
        """Wait for the child; its stats (RuntimeError, with its last words, if it failed)."""
        process = self._process
        if process is None:
            raise RuntimeError("the back office was not started")
        output = process.stdout.read() if process.stdout is not None else b""
        if process.stdout is not None:
            process.stdout.close()
        code = process.wait()
        self._process = None
        lines = output.decode(errors="replace").strip().splitlines()
        if code != 0 or not lines:
            raise RuntimeError(f"the demo's back office failed (exit {code}): {self._last_words()}")
        self._close_errors()
        return DemoStats.from_json(json.loads(lines[-1]))

    def stop(self) -> None:
        """Stop the child if it still runs (after an error in the parent)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_errors()

    def _last_words(self) -> str:
        if self._errors is None:
            return "no output"
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        self._close_errors()
        return lines[-1] if lines else "no output"

    def _close_errors(self) -> None:
        if self._errors is not None:
            self._errors.close()
            self._errors = None


def _run(settings: BackOfficeSettings) -> DemoStats:  # pragma: no cover - in the child
    from llmops.demo.support_app import Providers, SimulatedClock, run_month
    from llmops.demo.traffic import Schedule
    from llmops.demo.workspace import Workspace
    from llmops.gateway import Gateway

    schedule = Schedule.of(settings.days, datetime.fromisoformat(settings.now))
    workspace = Workspace(Path(settings.workspace), shutil.which("git"))
    providers = Providers(
        Address(settings.working), Address(settings.limited), Address(settings.down)
    )
    clock = SimulatedClock(schedule.start)
    gateway = Gateway(
        database_url=settings.database_url, prompts=workspace.registry(), clock=clock,
        home=settings.home, budgets=[], direct=True,
    )  # fmt: skip
    try:
        return asyncio.run(
            run_month(
                gateway,
                workspace,
                providers,
                schedule,
                clock,
                calls_per_day=settings.calls_per_day,
                seed=settings.seed,
                kinds=BACK_OFFICE,
                releases=False,
            )
        )
    finally:
        gateway.close()


def main() -> None:  # pragma: no cover - in the child
    settings = BackOfficeSettings(**json.loads(sys.stdin.readline()))
    stats = _run(settings)
    print(json.dumps(stats.to_json()), flush=True)


if __name__ == "__main__":  # pragma: no cover
    main()
