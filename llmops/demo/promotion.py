"""The eval run at every promotion of the demo's ``support/answer``.

Before a version goes to production, the team runs the prompt's suite (``evals/support.yaml``
of the demo's workspace): the working-tree version as the candidate, the version in
production as the baseline (none at the first release, or without git).
:class:`PromotionEvals` does that through the eval runner and a Gateway (``source="eval"``)
whose clock stands at the promotion time, so the eval's calls, and its runs in
``eval_runs`` (their ``started_at`` and ``finished_at``), are dated when the promotion
happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from llmops.demo.workspace import Workspace
from llmops.evals.runner import Runner, SuiteReport, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.gateway import Gateway

__all__ = ["PromotionEvals"]


@dataclass
class PromotionEvals:
    """``await evals(prompt, at)`` runs and stores the suite of ``prompt`` dated ``at``.

    ``route(model)``: the call arguments of a model (the demo's simulated provider).
    ``reports`` keeps every report, and ``echo`` gets a line per run.
    """

    database_url: str
    workspace: Workspace
    route: Callable[[str], dict[str, Any]]
    echo: Callable[[str], None] = print
    reports: list[SuiteReport] = field(default_factory=list)

    async def __call__(self, prompt: str, at: datetime) -> None:
        suite = load_suite(self.workspace.evals / f"{prompt.split('/')[0]}.yaml")
        registry = self.workspace.registry()
        first = "production" not in registry.labels().of(suite.spec.prompt_refs()[0][0])
        # without git, the version in production cannot be loaded once the file changed
        alone = first or self.workspace.git is None
        suite_plan = plan(suite, registry, baseline="none" if alone else None)
        gateway = Gateway(
            database_url=self.database_url, prompts=registry, source="eval",
            clock=lambda: at, budgets=[], direct=True,
        )  # fmt: skip
        try:
            report = await Runner(gateway, call_kwargs=self.route, cache_scope="demo").arun(
                suite_plan
            )
            for run in report.runs:  # dated at the promotion, as the calls are
                run.started_at = at
                run.finished_at = at + timedelta(minutes=2)
            save_report(gateway.engine, report)
        finally:
            if gateway.direct is not None:
                await gateway.direct.aclose()  # this loop's HTTP session
            gateway.close()
        self.reports.append(report)
        self.echo(_summary(report, at))


def _summary(report: SuiteReport, at: datetime) -> str:
    def rate(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.0%}"

    parts = []
    for run in report.runs:
        parts.append(f"{run.target.role} {run.target.version} {rate(run.interval.rate)}")
    verdicts = ", ".join(c.verdict for c in report.comparisons.values())
    when = at.strftime("%Y-%m-%d %H:%M")
    line = f"  eval {report.suite.name} at {when} UTC: pass rate " + ", ".join(parts)
    return line + (f" ({verdicts})" if verdicts else "")
