"""The demo's own project folder: its prompts under git, its eval suite and its config.

``llmops demo`` runs a simulated support app whose prompts change during the simulated
month, so it keeps them in a folder of its own (``$LLMOPS_HOME/demo``, recreated by every
run) instead of touching the project's ``prompts/``. The folder is a git repository whose
commits and label promotions carry the simulated dates, so ``llmops prompts log`` and the
dashboard's Prompts page show the month's history::

    .llmops/demo/
      prompts/support/answer.yaml     the help-widget answer, retrieval-augmented (v1, then v2)
      prompts/support/escalate.yaml   drafts for escalated tickets (o3)
      prompts/extract/ticket.yaml     email -> ticket JSON
      prompts/summarize/thread.yaml   handoff summaries (claude-haiku-4-5)
      prompts/labels.yaml             production labels, moved by promotions
      evals/support.yaml              the suite run at every promotion of support/answer
      llmops.yaml                     the demo's budgets (written after the traffic)

Without git the demo still runs: every version is then the working-tree file of its time,
recorded without a commit, and an eval at a promotion has no baseline to compare with.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from llmops.demo.articles import context_text, retrieve
from llmops.demo.knowledge import INVENTED_FEATURES, PRODUCTS
from llmops.errors import ConfigError
from llmops.prompts import PromptRegistry

__all__ = ["CONTEXT_HEADER", "Workspace", "nice_budget"]

MARKER = ".llmops-demo"
#: The first line of the system message that carries the retrieved articles.
CONTEXT_HEADER = "Help-center articles found for this question:"
AUTHOR = ("Acme Support Team", "support-team@acme.example")

_CONTEXT_SCHEMA = """\
    context: {type: string, description: the retrieved articles, as text}"""

_CONTEXT_MESSAGE = f"""\
  - role: system
    content: |
      {CONTEXT_HEADER}

      {{{{ context }}}}"""

_ANSWER_HEAD = f"""\
description: Answers a customer's question in the help widget, from retrieved help-center articles.
model: gpt-4o-mini
params:
  temperature: 0.2
  max_tokens: 400
input_schema:
  type: object
  required: [question, product, context]
  additionalProperties: false
  properties:
    customer_name: {{type: string, default: ""}}
    question: {{type: string, minLength: 3}}
    product: {{type: string, enum: [Acme Router, Acme Mesh, Acme Cloud]}}
    tier: {{type: string, enum: [free, pro, enterprise], default: free}}
{_CONTEXT_SCHEMA}
tags: [support, customer-facing, rag]
messages:
"""
_QUESTION_MESSAGE = """\
  - role: user
    content: |
      {% if customer_name %}Hi, I'm {{ customer_name }}. {% endif %}{{ question }}
"""

#: support/answer as first promoted: short answers, nothing against made-up features.
ANSWER_V1 = (
    _ANSWER_HEAD
    + """\
  - role: system
    content: |
      You are a support agent for {{ product }}.
      Answer in at most three sentences.
"""
    + _CONTEXT_MESSAGE
    + "\n"
    + _QUESTION_MESSAGE
)

#: support/answer v2, rolled out in the middle of the month: steps, a check, no inventions.
ANSWER_V2 = (
    _ANSWER_HEAD
    + """\
  - role: system
    content: |
      You are a friendly support agent for {{ product }}.
      Use the help-center articles below.
      Start with the most likely fix, as numbered steps, then say how to tell it worked.
      Answer in at most five sentences and never invent product features.
      {% if tier == "enterprise" %}
      The customer is on the enterprise plan: offer a call with their account manager.
      {% endif %}
"""
    + _CONTEXT_MESSAGE
    + "\n"
    + _QUESTION_MESSAGE
)

ESCALATE = (
    f"""\
description: Drafts the reply to an escalated ticket, for a human agent to check and send.
model: o3
params:
  reasoning_effort: medium
  max_tokens: 8000
input_schema:
  type: object
  required: [ticket, product, context]
  additionalProperties: false
  properties:
    ticket: {{type: string, minLength: 1}}
    product: {{type: string, enum: [Acme Router, Acme Mesh, Acme Cloud]}}
{_CONTEXT_SCHEMA}
tags: [support, escalations, agent-assist]
messages:
  - role: system
    content: |
      You are a senior support specialist for {{{{ product }}}}, drafting a reply that a human
      agent checks before sending. Read the whole ticket history first.
      Start with the most likely fix, as numbered steps, then say how to tell it worked.
      Never invent product features.
"""
    + _CONTEXT_MESSAGE
    + """
  - role: user
    content: "{{ ticket }}"
"""
)

TICKET = """\
description: Turns a free-text support email into a structured ticket.
model: gpt-4o-mini
params:
  temperature: 0
  max_tokens: 300
input_schema:
  type: object
  required: [email]
  properties:
    email: {type: string, minLength: 1}
output_schema:
  type: object
  required: [category, priority, summary]
  additionalProperties: false
  properties:
    category: {type: string, enum: [billing, outage, how-to, bug, other]}
    priority: {type: string, enum: [low, normal, high, urgent]}
    summary: {type: string, maxLength: 200}
    product: {type: [string, "null"]}
tags: [extraction, json]
messages:
  - role: system
    content: |
      Extract a support ticket from the email. Reply with JSON only, with the keys
      category (billing, outage, how-to, bug or other), priority (low, normal, high
      or urgent), summary (one sentence) and product (or null).
  - role: user
    content: "{{ email }}"
"""

SUMMARY = """\
description: Summarises a support conversation for the next agent on shift.
model: claude-haiku-4-5
params:
  temperature: 0.3
  max_tokens: 250
input_schema:
  type: object
  required: [messages]
  properties:
    messages:
      type: array
      minItems: 1
      items:
        type: object
        required: [author, text]
        properties:
          author: {type: string}
          text: {type: string}
tags: [support, internal]
template: |
  Summarise this support conversation in three bullet points for the next agent:
  what the customer wants, what was tried, and what is still open.

  {% for m in messages %}
  {{ m.author }}: {{ m.text }}
  {% endfor %}
"""

#: The first version of every prompt (support/answer changes later).
PROMPTS = {
    "support/answer": ANSWER_V1,
    "support/escalate": ESCALATE,
    "extract/ticket": TICKET,
    "summarize/thread": SUMMARY,
}

#: A question per topic for the eval suite (``{p}``: the product).
EVAL_QUESTIONS = {
    "reset": "How do I reset my {p} to factory settings?",
    "wifi": "My {p} is really slow in the evening, what can I do?",
    "password": "I forgot my password and can't log in to my {p}.",
    "billing": "I was charged twice for my {p} this month.",
    "firmware": "How do I update the firmware of my {p}?",
    "setup": "How do I set up my new {p}?",
    "generic": "My {p} stopped working this morning.",
}
RUBRIC = "The answer gives numbered steps and says how to tell the fix worked."


def support_suite(seed: int = 11) -> dict[str, Any]:
    """The eval suite of support/answer: a case per product and topic, each with the
    articles the app's retriever finds for it (so the eval sees what production sees)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible cases, not security
    tiers = ("free", "pro", "enterprise")
    cases: list[dict[str, Any]] = []
    for product in PRODUCTS:
        for index, (topic, question) in enumerate(EVAL_QUESTIONS.items()):
            text = question.format(p=product)
            checks: list[dict[str, Any]] = [
                {"type": "icontains", "value": product, "metric": "on-topic"}
            ]
            if (index + len(cases)) % 2 == 0:
                checks.append({"type": "llm-rubric", "value": RUBRIC, "metric": "helpful",
                               "weight": 2})  # fmt: skip
            cases.append(
                {
                    "id": f"{product.split()[-1].lower()}-{topic}",
                    "vars": {
                        "question": text,
                        "product": product,
                        "tier": tiers[len(cases) % 3],
                        "context": context_text(retrieve(product, text, 3, rng)),
                    },
                    "assert": checks,
                }
            )
    return {
        "description": "Help-widget answers stay on topic, invent no features, give steps.",
        "prompt": "support/answer",
        "threshold": 0.8,
        "concurrency": 8,
        "defaults": {
            "assert": [
                {
                    "type": "not-icontains-any",
                    "value": list(INVENTED_FEATURES),
                    "metric": "grounded",
                },
                {"type": "cost", "value": 0.01},
            ]
        },
        "cases": cases,
    }


def nice_budget(usd: float) -> float:
    """``usd`` rounded up to a quarter of its power of ten, then to whole cents, a budget a
    person would set and read as it is shown: 7.43 -> 7.5, 13.2 -> 15, 0.41 -> 0.43."""
    if usd <= 0 or not math.isfinite(usd):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(usd))
    quarter = math.ceil(usd / magnitude * 4 - 1e-9) / 4 * magnitude
    return round(math.ceil(quarter * 100 - 1e-9) / 100, 2)


@dataclass
class Workspace:
    """The demo's folder (see the module docstring); make one with :meth:`create`."""

    root: Path
    git: str | None

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def evals(self) -> Path:
        return self.root / "evals"

    @property
    def config(self) -> Path:
        return self.root / "llmops.yaml"

    @classmethod
    def create(cls, root: Path, *, at: datetime, use_git: bool = True) -> Workspace:
        """A fresh workspace at ``root`` with the first version of every prompt and the eval
        suite, committed at ``at``. A folder there from an earlier demo is replaced; any
        other folder is refused (ConfigError)."""
        if root.exists():
            if not (root / MARKER).is_file():
                raise ConfigError(
                    f"{root} exists and is not a folder of `llmops demo`: move it away or "
                    "set LLMOPS_HOME to another folder"
                )
            shutil.rmtree(root)
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
            raise ConfigError(f"cannot create the demo folder {root}: {reason}") from None
        (root / MARKER).write_text("Made by `llmops demo`, which replaces it on every run.\n")
        git = shutil.which("git") if use_git else None
        workspace = cls(root, git)
        for name, text in PROMPTS.items():
            workspace.write_prompt(name, text)
        workspace.evals.mkdir()
        suite = yaml.safe_dump(support_suite(), sort_keys=False, width=100, allow_unicode=True)
        (workspace.evals / "support.yaml").write_text(
            "# The suite `llmops demo` runs at every promotion of support/answer.\n" + suite
        )
        if git is not None:
            workspace._git(None, "init", "--quiet", "--template=", "--initial-branch=main")
            workspace.commit("Support assistant: answers, escalations, tickets, summaries", at)
        return workspace

    def registry(self) -> PromptRegistry:
        return PromptRegistry(self.prompts)

    def write_prompt(self, name: str, text: str) -> None:
        path = self.prompts / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def commit(self, message: str, at: datetime) -> None:
        """Commit everything in the folder, dated ``at`` (nothing without git)."""
        if self.git is None:
            return
        self._git(None, "add", "--all")
        self._git(at, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message)

    def promote(self, names: list[str], label: str, at: datetime) -> dict[str, str]:
        """Point ``label`` of each prompt in ``names`` at its working-tree version and commit
        ``labels.yaml`` at ``at``; returns name -> version."""
        registry = self.registry()
        versions = {}
        for name in names:
            versions[name], _ = registry.promote(name, registry.current(name).version, label)
        promoted = ", ".join(f"{name} {version}" for name, version in versions.items())
        self.commit(f"Promote {promoted} to {label}", at)
        return versions

    def write_config(self, daily_usd: float, monthly_usd: float) -> None:
        """The demo's ``llmops.yaml``: its daily and monthly budgets, and two limits."""
        config = {
            "budgets": {
                "daily_usd": daily_usd,
                "monthly_usd": monthly_usd,
                "limits": [
                    {"name": "all-calls-daily", "window": "day", "limit_usd": daily_usd},
                    {
                        "name": "o3-monthly",
                        "window": "month",
                        "limit_usd": nice_budget(monthly_usd / 2),
                        "scope": {"model": "o3"},
                    },
                ],
            }
        }
        header = "# Written by `llmops demo`: the budgets its dashboard shows.\n"
        self.config.write_text(header + yaml.safe_dump(config, sort_keys=False))

    def _git(self, at: datetime | None, *args: str) -> None:
        if self.git is None:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")
        if at is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = at.isoformat()
        name, email = AUTHOR
        command = [self.git, "-c", f"user.name={name}", "-c", f"user.email={email}",
                   "-c", "commit.gpgsign=false", *args]  # fmt: skip
        result = subprocess.run(
            command, cwd=self.root, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ConfigError(f"git {args[0]} failed in {self.root}: {result.stderr.strip()}")
