"""The eval runner: every case, against every prompt version and model, concurrently.

Model calls go through the Gateway (recorded with ``source='eval'`` and the run id), so
eval spend shows up with everything else; the response cache replays earlier answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from llmops.errors import ConfigFileError, LLMOpsError
from llmops.evals import graders
from llmops.evals.assertions import (
    Context,
    Outcome,
    RenderProblem,
    apply_transform,
    broken,
    check_context,
    finish,
    with_vars,
)
from llmops.evals.cache import CachedResponse, ResponseCache, cache_key
from llmops.evals.grading import Grader, JudgeCallFailed
from llmops.evals.nway import NWay, compare_all
from llmops.evals.pairing import baseline_of, baselines
from llmops.evals.protocols import EvalGateway
from llmops.evals.pycode import TimeLimit
from llmops.evals.response import offered_tools
from llmops.evals.stats import Comparison, Interval, compare, pass_fraction, rate
from llmops.evals.suite import WORKING, Assertion, Case, ModelEntry, Suite
from llmops.evals.targets import AppTarget, TargetFailed
from llmops.gateway.scope import linked
from llmops.prompts import Prompt, PromptRegistry

#: A target's part in a suite: the version under test, the one it is compared with, or
#: any further version listed in the suite.
Role = Literal["candidate", "baseline", "other"]


@dataclass(frozen=True)
class Target:
    """One prompt version on one model, or an app's own function or service (``app``)."""

    role: Role
    ref: str  # as given: working, production, a version id, a commit; or the target
    prompt: Prompt | None
    model: str  # the model, or "python" / "http" for an app target
    params: dict[str, Any] = field(default_factory=dict, hash=False)  # the model entry's
    label: str = ""  # the model entry's label (reports, storage); default the model
    app: AppTarget | None = None

    @property
    def name(self) -> str:
        """The prompt's name, or the app target's function or URL."""
        return self.prompt.name if self.prompt else self.app.name if self.app else self.ref

    @property
    def version(self) -> str:
        """The prompt version, or a digest of the app target's source file or settings."""
        return self.prompt.version if self.prompt else self.app.version if self.app else ""

    @property
    def commit(self) -> str | None:
        return self.prompt.commit if self.prompt else None

    @property
    def model_label(self) -> str:
        """How reports and stored runs name the model: the entry's label, else the model."""
        return self.label or self.model

    @property
    def call_params(self) -> dict[str, Any]:
        """The prompt's parameters, overridden by the model entry's."""
        return {**(self.prompt.params if self.prompt else {}), **self.params}


@dataclass
class CaseResult:
    case_id: str
    repeat: int
    output: str
    score: float
    passed: bool
    outcomes: list[Outcome]
    error: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None  # what this run spent (0 for a cache hit)
    cached: bool = False
    call_id: str | None = None

    @property
    def errored(self) -> bool:
        """The model call, the judge or a check failed: no pass or fail for this repeat."""
        return self.error is not None or any(o.error for o in self.outcomes)

    @property
    def error_reason(self) -> str | None:
        if self.error is not None:
            return self.error
        return next((o.error for o in self.outcomes if o.error), None)


@dataclass
class RunResult:
    """All results of one suite against one target."""

    id: str
    target: Target
    suite: Suite
    results: list[CaseResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def role(self) -> Role:
        return self.target.role

    @property
    def model(self) -> str:
        """The model's label (pairs a candidate with the baseline run of the same entry)."""
        return self.target.model_label

    @property
    def passed(self) -> int:
        """Repeats that passed."""
        return sum(r.passed and not r.errored for r in self.results)

    @property
    def completed(self) -> int:
        """Repeats with a result (not errored)."""
        return sum(not r.errored for r in self.results)

    @property
    def interval(self) -> Interval:
        """The pass rate over cases (the mean of their pass fractions), with its interval."""
        return rate(self.by_case())

    def errored_cases(self) -> list[str]:
        """Cases with no completed repeat."""
        return [case for case, passes in self.by_case().items() if pass_fraction(passes) is None]

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd or 0.0 for r in self.results)

    @property
    def cached(self) -> int:
        return sum(r.cached for r in self.results)

    def by_case(self) -> dict[str, list[bool | None]]:
        """Case id -> pass flag per repeat (None for an errored repeat)."""
        cases: dict[str, list[bool | None]] = {}
        for result in sorted(self.results, key=lambda r: (r.case_id, r.repeat)):
            cases.setdefault(result.case_id, []).append(None if result.errored else result.passed)
        return cases

    def flaky(self) -> list[str]:
        return [
            case
            for case, passes in self.by_case().items()
            if (fraction := pass_fraction(passes)) is not None and 0 < fraction < 1
        ]

    def metrics(self) -> dict[str, float]:
        """Mean score of each named metric (over completed repeats)."""
        scores: dict[str, list[float]] = {}
        for result in self.results:
            if result.errored:
                continue
            for outcome in result.outcomes:
                if outcome.metric:
                    scores.setdefault(outcome.metric, []).append(outcome.score)
        return {name: sum(values) / len(values) for name, values in sorted(scores.items())}


@dataclass
class SuiteReport:
    """One suite's runs, the candidate-vs-baseline comparisons and the gate verdicts."""

    suite: Suite
    batch_id: str
    runs: list[RunResult]
    comparisons: dict[str, Comparison]  # model -> comparison
    nway: dict[str, NWay] = field(default_factory=dict)  # model -> every pair (informational)

    @property
    def threshold(self) -> float:
        return self.suite.spec.threshold

    def version_name(self, run: RunResult) -> str:
        """The run's prompt version as the N-way comparison names it."""
        return version_name(run.target, several_prompts=self.suite.spec.prompts is not None)

    def candidates(self) -> list[RunResult]:
        return [run for run in self.runs if run.target.role == "candidate"]

    def baseline_for(self, model: str) -> RunResult | None:
        return baseline_of(model, self.runs)

    def below_threshold(self) -> list[RunResult]:
        """Candidate runs whose pass rate over completed cases is below the threshold."""
        return [
            run
            for run in self.candidates()
            if not math.isnan(run.interval.rate) and run.interval.rate < self.threshold
        ]

    def errors(self) -> int:
        """Repeats without a result, in every run of the suite."""
        return sum(len(run.results) - run.completed for run in self.runs)

    def regressions(self) -> dict[str, Comparison]:
        return {m: c for m, c in self.comparisons.items() if c.significant_regression}


@dataclass(frozen=True)
class Job:
    run: RunResult
    case: Case
    repeat: int


@dataclass
class Plan:
    """What a run will do, before it does it (``--dry-run`` prints it)."""

    suite: Suite
    targets: list[Target]
    repeat: int
    concurrency: int
    runs: list[RunResult]
    jobs: list[Job]
    messages: dict[tuple[str, str], list[dict[str, Any]]]  # (prompt version, case) -> rendered


def resolve_targets(
    suite: Suite,
    registry: PromptRegistry,
    *,
    version: str | None = None,
    baseline: str | None = None,
    models: list[str] | None = None,
) -> list[Target]:
    """The prompt versions and models to run; errors name the suite file.

    ``version`` and ``baseline`` replace the reference of the first and second listed
    version (of ``versions``, or of ``prompts``, keeping the entry's prompt name)."""
    spec = suite.spec
    if spec.target is not None:
        try:
            app = AppTarget(spec.target, Path(suite.file).parent)
        except LLMOpsError as exc:
            raise ConfigFileError(f"target: {exc}", file=suite.file) from None
        return [Target("candidate", app.name, None, app.kind, app=app)]
    listed = spec.prompt_refs()
    first = listed[0][0]
    others: list[Role] = ["other"] * (len(listed) - 2)
    roles: list[Role] = ["candidate", "baseline", *others]
    entries = list(zip(listed, roles, strict=False))
    if version:
        entries[0] = ((first, version), "candidate")
    if baseline is not None:
        name = listed[1][0] if len(listed) > 1 else first
        kept: list[tuple[tuple[str, str], Role]] = (
            [] if baseline.lower() == "none" else [((name, baseline), "baseline")]
        )
        entries = [entries[0], *kept, *entries[2:]]  # with none, the others stay others
    elif (
        spec.prompt is not None
        and spec.versions is None
        and "production" in registry.labels().of(first)
    ):
        entries.append(((first, "production"), "baseline"))
    # a version listed twice runs once, in its first role: a baseline that is the
    # candidate is no baseline, and a third version does not take its place
    unique: dict[tuple[str, str], Role] = {}
    for key, role in entries:
        unique.setdefault(key, role)
    targets = []
    for (name, ref), role in unique.items():
        full = name if ref == WORKING else f"{name}@{ref}"
        try:
            prompt = registry.load(full)
        except LLMOpsError as exc:
            what = f"version {ref!r}" if spec.prompts is None else f"prompt {full!r}"
            raise ConfigFileError(f"{what}: {exc}", file=suite.file) from None
        chosen = [ModelEntry(id=m) for m in models] if models else spec.model_entries()
        if not chosen:
            if not prompt.model:
                raise ConfigFileError(
                    f"prompt {name!r} has no model: give models: in the suite",
                    file=suite.file,
                )
            chosen = [ModelEntry(id=prompt.model)]
        for entry in chosen:
            targets.append(Target(role, ref, prompt, entry.id, dict(entry.params), entry.name))
    return targets


def plan(
    suite: Suite,
    registry: PromptRegistry,
    *,
    version: str | None = None,
    baseline: str | None = None,
    models: list[str] | None = None,
    repeat: int | None = None,
    concurrency: int | None = None,
) -> Plan:
    """Resolve versions and render every case up front, so bad input stops the run early."""
    targets = resolve_targets(suite, registry, version=version, baseline=baseline, models=models)
    repeats = repeat or suite.spec.repeat
    rendered: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in targets:
        if target.prompt is None:  # an app target renders nothing
            continue
        for case in suite.cases:
            key = (target.prompt.version, str(case.id))
            if key in rendered:
                continue
            try:
                rendered[key] = target.prompt.render(suite.case_vars(case))
            except LLMOpsError as exc:
                raise ConfigFileError(
                    f"case {case.id} ({target.ref}): {exc}",
                    file=suite.file,
                    line=suite.case_lines.get(str(case.id)),
                ) from None
            for assertion in suite.case_assertions(case):
                if (
                    assertion.base_type == "json-schema"
                    and assertion.value in (None, "output_schema")
                    and not target.prompt.output_schema
                ):
                    raise ConfigFileError(
                        f"case {case.id}: json-schema without a value needs the prompt's "
                        "output_schema, and it has none",
                        file=suite.file,
                        line=suite.case_lines.get(str(case.id)),
                    )
                if assertion.base_type == graders.SELECT_BEST and len(targets) < 2:
                    raise ConfigFileError(
                        f"case {case.id}: select-best compares the outputs of several "
                        "targets (versions or models), and this run has one",
                        file=suite.file,
                        line=suite.case_lines.get(str(case.id)),
                    )
    batch_runs = [RunResult(str(uuid.uuid4()), target, suite) for target in targets]
    jobs = [
        Job(run, case, index)
        for run in batch_runs
        for case in suite.cases
        for index in range(repeats)
    ]
    return Plan(
        suite=suite,
        targets=targets,
        repeat=repeats,
        concurrency=concurrency or suite.spec.concurrency,
        runs=batch_runs,
        jobs=jobs,
        messages=rendered,
    )


class Runner:
    """Runs plans through a gateway, with a response cache."""

    def __init__(
        self,
        gateway: EvalGateway,
        *,
        cache: ResponseCache | None = None,
        call_kwargs: Callable[[str], dict[str, Any]] | None = None,
        cache_scope: str = "live",
        judge: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        alpha: float | None = None,
    ) -> None:
        self.gateway = gateway
        self.cache = cache
        self.call_kwargs = call_kwargs or (lambda model: {})
        self.cache_scope = cache_scope
        self.grader = Grader(
            gateway, cache=cache, call_kwargs=self.call_kwargs, cache_scope=cache_scope
        )
        self.judge = judge
        self.progress = progress
        self.alpha = alpha  # overrides the suites' own

    def run(self, plan: Plan, batch_id: str | None = None) -> SuiteReport:
        return asyncio.run(self.arun(plan, batch_id))

    async def arun(self, plan: Plan, batch_id: str | None = None) -> SuiteReport:
        batch = batch_id or str(uuid.uuid4())
        semaphore = asyncio.Semaphore(plan.concurrency)
        done = 0

        async def one(job: Job) -> None:
            nonlocal done
            async with semaphore:
                result = await self._run_case(plan, job, batch)
            job.run.results.append(result)
            done += 1
            if self.progress:
                self.progress(done, len(plan.jobs))

        await asyncio.gather(*(one(job) for job in plan.jobs))
        await self._select_best(plan, batch)
        runs = plan.runs
        for run in runs:
            run.finished_at = datetime.now(UTC)
            run.results.sort(key=lambda r: (r.case_id, r.repeat))
        alpha = self.alpha or plan.suite.spec.alpha
        comparisons = {
            candidate.model: compare(candidate.by_case(), base.by_case(), alpha=alpha)
            for candidate, base in baselines(runs)
        }
        report = SuiteReport(plan.suite, batch, runs, comparisons)
        report.nway = compare_versions(report, alpha)
        return report

    async def _run_case(self, plan: Plan, job: Job, batch: str) -> CaseResult:
        target, case = job.run.target, job.case
        if target.prompt is None:
            return await self._run_app_case(plan, job, batch)
        messages = plan.messages[(target.prompt.version, str(case.id))]
        params = target.call_params
        key = cache_key(target.model, messages, params, job.repeat, self.cache_scope)
        hit = self.cache.get(key) if self.cache else None
        started = time.perf_counter()
        call_id: str | None
        spent: float | None  # what this run spent: the call's cost, and the judges'
        if hit is not None:
            output, cost, latency, call_id, spent = (
                hit.text,
                hit.cost_usd,
                hit.latency_ms,
                None,
                0.0,
            )
            tool_calls, finish_reason, logprobs = (
                hit.tool_calls or [],
                hit.finish_reason,
                hit.logprobs,
            )
        else:
            try:
                completion = await self.gateway.acomplete(
                    target.prompt,
                    plan.suite.case_vars(case),
                    model=target.model,
                    tags=["eval", plan.suite.name],
                    metadata={
                        "eval_run_id": job.run.id,
                        "eval_batch_id": batch,
                        "suite": plan.suite.name,
                        "case": case.id,
                        "repeat": job.repeat,
                    },
                    **{**target.params, **self.call_kwargs(target.model)},
                )
            except Exception as exc:  # the model failed: the case fails, the run goes on
                latency = (time.perf_counter() - started) * 1000
                reason = f"model call failed: {type(exc).__name__}: {str(exc)[:300]}"
                return CaseResult(str(case.id), job.repeat, "", 0.0, False, [], reason, latency)
            output, cost, latency = completion.text, completion.cost_usd, completion.latency_ms
            call_id, spent = completion.call_id, completion.cost_usd
            tool_calls, finish_reason, logprobs = (
                completion.tool_calls,
                completion.finish_reason,
                completion.logprobs,
            )
            if self.cache:
                self.cache.put(
                    key,
                    CachedResponse(
                        output,
                        cost,
                        latency,
                        completion.usage.prompt_tokens,
                        completion.usage.completion_tokens,
                        call_id,
                        tool_calls or None,
                        finish_reason,
                        logprobs,
                    ),
                )
        context = Context(
            vars=plan.suite.case_vars(case),
            output_schema=target.prompt.output_schema,
            cost_usd=cost,
            latency_ms=latency,
            base_dir=Path(plan.suite.file).parent,
            prompt=prompt_text(messages),
            test=case.model_dump(by_alias=True, exclude_none=True),
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            logprobs=logprobs,
            tools=offered_tools(params),
        )
        checked, problem = case_output(plan.suite.case_transform(case), output, context)
        if problem is not None:  # the case's transform failed: the case errors
            return CaseResult(
                str(case.id), job.repeat, output, 0.0, False, [], problem, latency,
                spent if hit is None else 0.0, hit is not None, call_id,
            )  # fmt: skip
        outcomes = []
        for assertion in plan.suite.case_assertions(case):
            outcome, judge_cost = await self.grader.grade(
                assertion, checked, context, plan.suite.spec.judge or self.judge or target.model,
                judge_metadata(job.run, batch), embedder=plan.suite.spec.embedder,
            )  # fmt: skip
            if judge_cost:
                spent = (spent or 0.0) + judge_cost
            outcomes.append(outcome)
        score, passed = case_score(outcomes, case.threshold)
        return CaseResult(
            str(case.id), job.repeat, output, score, passed, outcomes, None, latency,
            spent, hit is not None, call_id,
        )  # fmt: skip

    async def _run_app_case(self, plan: Plan, job: Job, batch: str) -> CaseResult:
        """A case of an app target: its function or service is called (never cached: it is
        code), every model call it makes through llmops is linked to the run, and what
        those calls cost is the case's cost."""
        target, case = job.run.target, job.case
        app = target.app
        variables = plan.suite.case_vars(case)
        metadata = {
            "eval_run_id": job.run.id,
            "eval_batch_id": batch,
            "suite": plan.suite.name,
            "case": case.id,
            "repeat": job.repeat,
        }
        tags = ["eval", plan.suite.name]
        headers = {
            "x-llmops-metadata": json.dumps(metadata),
            "x-llmops-tags": ",".join(tags),
        }
        started = time.perf_counter()
        with linked(metadata, tags) as scope:
            try:
                if app is None:
                    raise TargetFailed("the target has nothing to call")
                answer = await app.call(variables, headers)
            except TargetFailed as exc:
                latency = (time.perf_counter() - started) * 1000
                return CaseResult(
                    str(case.id), job.repeat, "", 0.0, False, [], f"target failed: {exc}",
                    latency, scope.cost_usd or None, False, next(iter(scope.call_ids), None),
                )  # fmt: skip
        latency = (time.perf_counter() - started) * 1000
        cost = answer.cost_usd
        if cost is None and scope.call_ids and not scope.unpriced:
            cost = scope.cost_usd
        context = Context(
            vars=variables,
            cost_usd=cost,
            latency_ms=latency,
            base_dir=Path(plan.suite.file).parent,
            test=case.model_dump(by_alias=True, exclude_none=True),
            tool_calls=answer.tool_calls,
        )
        spent = scope.cost_usd
        call_id = next(iter(answer.call_ids or scope.call_ids), None)
        checked, problem = case_output(plan.suite.case_transform(case), answer.text, context)
        if problem is not None:  # the case's transform failed: the case errors
            return CaseResult(
                str(case.id), job.repeat, answer.text, 0.0, False, [], problem, latency,
                spent, False, call_id,
            )  # fmt: skip
        outcomes = []
        for assertion in plan.suite.case_assertions(case):
            judge = plan.suite.spec.judge or self.judge or ""
            if not judge and assertion.base_type == "llm-rubric" and not assertion.provider:
                outcomes.append(broken(assertion, "llm-rubric: name a judge model (judge:)"))
                continue
            outcome, judge_cost = await self.grader.grade(
                assertion, checked, context, judge, judge_metadata(job.run, batch),
                embedder=plan.suite.spec.embedder,
            )  # fmt: skip
            spent += judge_cost
            outcomes.append(outcome)
        score, passed = case_score(outcomes, case.threshold)
        return CaseResult(
            str(case.id), job.repeat, answer.text, score, passed, outcomes, None, latency,
            spent, False, call_id,
        )  # fmt: skip

    async def _select_best(self, plan: Plan, batch: str) -> None:
        """Grade the ``select-best`` assertions once every target ran: per case, repeat and
        assertion, one judge call compares the outputs of every target; the one it picks
        passes, the others fail. The judge's cost is shared by the compared results."""
        cases = {str(case.id): case for case in plan.suite.cases}
        groups: dict[tuple[str, int], list[tuple[RunResult, CaseResult]]] = {}
        for run in plan.runs:
            for result in run.results:
                groups.setdefault((result.case_id, result.repeat), []).append((run, result))
        picks = [
            (members, index, assertion, cases[case_id])
            for (case_id, _), members in groups.items()
            for index, assertion in enumerate(plan.suite.case_assertions(cases[case_id]))
            if assertion.base_type == graders.SELECT_BEST
        ]
        if not picks:
            return
        semaphore = asyncio.Semaphore(plan.concurrency)

        async def one(
            members: list[tuple[RunResult, CaseResult]],
            index: int,
            assertion: Assertion,
            case: Case,
        ) -> None:
            async with semaphore:
                await self._pick(plan, batch, members, index, assertion, case)

        await asyncio.gather(*(one(*pick) for pick in picks))

    async def _pick(
        self,
        plan: Plan,
        batch: str,
        members: list[tuple[RunResult, CaseResult]],
        index: int,
        assertion: Assertion,
        case: Case,
    ) -> None:
        """One select-best: the outcome at ``index`` of each compared result, rescored."""
        compared = [(run, r) for run, r in members if r.error is None and len(r.outcomes) > index]
        cost = 0.0
        try:
            rendered = with_vars(assertion, plan.suite.case_vars(case))
            if len(compared) < 2:
                raise graders.JudgeProblem("needs the outputs of at least two targets")
            criterion = str(rendered.value)
            judge = (
                assertion.provider
                or plan.suite.spec.judge
                or self.judge
                or compared[0][0].target.model
            )
            # shown in an order of their own per case and repeat, the same on every run (the
            # judge's cache holds): a judge that prefers a place favours no target overall
            seed = f"{case.id}\0{compared[0][1].repeat}\0{index}"
            shown = sorted(
                range(len(compared)),
                key=lambda i: hashlib.sha256(f"{seed}\0{i}".encode()).digest(),
            )
            texts = [compared[i][1].output for i in shown]
            messages = graders.select_best_messages(criterion, texts)
            metadata = judge_metadata(compared[0][0], batch)
            text, cost = await self.grader.ask(messages, judge, metadata)
            best = texts[graders.parse_choice(text, len(compared))].strip()
        except (RenderProblem, JudgeCallFailed, graders.JudgeProblem) as exc:
            outcomes = [broken(assertion, f"select-best: {exc}") for _ in compared]
        else:
            # the same text as the one picked is picked too: identical outputs never lose
            picked = [r.output.strip() == best for _, r in compared]
            outcomes = [
                finish(
                    assertion,
                    float(chosen),
                    f"{'picked' if chosen else 'not picked'} as the best: {criterion}",
                    passed=chosen,
                )
                for chosen in picked
            ]
        for (_, result), outcome in zip(compared, outcomes, strict=True):
            result.outcomes[index] = outcome
            result.score, result.passed = case_score(result.outcomes, case.threshold)
            if cost:
                result.cost_usd = (result.cost_usd or 0.0) + cost / len(compared)


def case_output(transform: str | None, output: str, context: Context) -> tuple[str, str | None]:
    """The output the case's assertions check: through the case's ``options.transform``
    (promptfoo's), or why that transform failed."""
    if transform is None:
        return output, None
    shared = check_context(Assertion(type="python"), context)
    try:
        return apply_transform(transform, output, shared, context.base_dir), None
    except TimeLimit as exc:
        return output, f"options.transform {exc}"
    except Exception as exc:  # the transform is broken: the case errors
        return output, f"options.transform raised {type(exc).__name__}: {str(exc)[:300]}"


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The rendered prompt as promptfoo hands it to checks: the text of a single user
    message, else the chat messages as JSON."""
    if len(messages) == 1 and isinstance(messages[0].get("content"), str):
        return str(messages[0]["content"])
    return json.dumps(messages, ensure_ascii=False)


def case_score(outcomes: list[Outcome], threshold: float | None) -> tuple[float, bool]:
    """The weighted mean score; a case passes at its threshold, else when all checks pass."""
    total = sum(o.weight for o in outcomes)
    score = sum(o.score * o.weight for o in outcomes) / total if total else 1.0
    if threshold is not None:
        return score, score >= threshold
    return score, all(o.passed for o in outcomes)


def version_name(target: Target, *, several_prompts: bool) -> str:
    """A prompt version as the N-way comparison names it: the reference, or with several
    prompts ``name`` (the working tree) or ``name@ref``."""
    if not several_prompts:
        return target.ref
    return target.name if target.ref == WORKING else f"{target.name}@{target.ref}"


def compare_versions(report: SuiteReport, alpha: float) -> dict[str, NWay]:
    """Every pair of versions on each model that ran three or more (two are the
    candidate-vs-baseline comparison), two-sided at twice the one-sided ``alpha``."""
    groups: dict[str, dict[str, dict[str, list[bool | None]]]] = {}
    for run in report.runs:
        groups.setdefault(run.model, {})[report.version_name(run)] = run.by_case()
    several = {model: versions for model, versions in groups.items() if len(versions) >= 3}
    return compare_all(several, min(2 * alpha, 0.999)) if several else {}


def judge_metadata(run: RunResult, batch: str) -> dict[str, Any]:
    """What a judge or embedding call of a run is recorded with."""
    return {"eval_run_id": run.id, "eval_batch_id": batch, "judge": True}
