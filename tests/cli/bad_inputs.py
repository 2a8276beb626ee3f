"""A corpus of bad inputs to the ``llmops`` command line.

Every entry is one invocation that must end with exit code 2 and exactly one line on
stderr, starting with ``error:``: no traceback, no usage box. ``test_bad_inputs.py`` runs
them all. An entry names the arguments, the environment, and the files to create in a
fresh project folder (text, bytes, a directory, or a sparse file of a given size);
``{tmp}`` in any of them stands for that folder.

The project folder always holds a valid prompt ``prompts/greet.yaml`` and a valid suite
``evals/ok.yaml``; the environment points ``LLMOPS_HOME`` and ``LLMOPS_DATABASE_URL`` into
it. Nothing here needs the network, a model or a database server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.conftest import prompt_yaml


class Dir:
    """Create a directory at this path."""


@dataclass(frozen=True)
class Huge:
    """A sparse file of ``size`` bytes (quick to create; size checks refuse it unread)."""

    size: int


Content = str | bytes | type[Dir] | Huge


@dataclass(frozen=True)
class Bad:
    id: str
    args: tuple[str, ...]
    files: dict[str, Content] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    expect: str = ""  # a part of the error line (case-insensitive)


BASE_FILES: dict[str, Content] = {
    "prompts/greet.yaml": prompt_yaml("Hello"),
    "evals/ok.yaml": "prompt: greet\ncases:\n  - vars: {name: Ann}\n",
}
BASE_ENV = {
    "LLMOPS_HOME": "{tmp}/home",
    "LLMOPS_DATABASE_URL": "sqlite:///{tmp}/db/calls.db",
}
CALL_ID = "6f1c3a52-0c5e-4a7e-9d55-2f0e8a7b1c01"
MB = 1024 * 1024

# -- file contents -------------------------------------------------------------------------

BINARY = bytes(range(256)) * 4  # NUL bytes and invalid UTF-8
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"
LATIN1 = "template: caf\xe9\n".encode("latin-1")
NUL_IN_TEXT = b"template: hi\nmodel: m\x00\n"
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
DEEP_FLOW = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
DEEP_BLOCK = "".join(" " * i + f"k{i}:\n" for i in range(1_000)) + " " * 1_000 + "v\n"
DEEP_SEQUENCE = "a:\n" + "".join(" " * i + "-\n" for i in range(1, 1_000)) + " " * 1_000 + "- x\n"
RECURSIVE_ALIAS = "a: &a [1, *a]\n"
RECURSIVE_MAP = "a: &a {b: *a}\n"
assert len(BILLION_LAUGHS) < 1100

# The same bad content in every kind of YAML file the CLI reads.
YAML_FILES: dict[str, tuple[str, tuple[str, ...], dict[str, Content]]] = {
    # kind: (the file, a command that reads it, other files)
    "prompt": ("prompts/bad.yaml", ("prompts", "show", "bad"), {}),
    "labels": ("prompts/labels.yaml", ("prompts", "show", "greet"), {}),
    "suite": ("evals/bad.yaml", ("eval", "run", "evals/bad.yaml", "--dry-run"), {}),
    "prices": (
        "prices.yaml",
        ("costs", "recompute", "--since", "1d", "--prices", "prices.yaml"),
        {},
    ),
    "config": ("llmops.yaml", ("prompts", "list"), {}),
}
YAML_CONTENT: dict[str, tuple[Content, str]] = {
    # name: (content, a part of the message)
    "binary": (BINARY, "not a text file"),
    "png": (PNG, "not a text file"),
    "latin1": (LATIN1, "not UTF-8"),
    "nul": (NUL_IN_TEXT, "not a text file"),
    "huge": (Huge(3 * MB), "larger than 2 MB"),
    "billion-laughs": (BILLION_LAUGHS, "aliases expand"),
    "deep-flow": (DEEP_FLOW, "nested more than 64"),
    "deep-block": (DEEP_BLOCK, "nested more than 64"),
    "recursive-alias": (RECURSIVE_ALIAS, "recursive alias"),
    "duplicate-key": ("a:\n  x: 1\nb: 2\na: 3\n", "duplicate key 'a' (first on line 1)"),
    "invalid": ("a: [1, 2\nb: }\n", "invalid YAML"),
}
DIRECTORY_READS = {  # kind -> message when the file is a directory
    "labels": "is a directory",
    "prices": "is a directory",
    "config": "is a directory",
}

# -- JSON, JSONL and CSV ------------------------------------------------------------------

SUITE_WITH_CASES = "prompt: greet\ncases_file: {}\n"
DATA_FILES: dict[str, tuple[str, tuple[str, ...], dict[str, Content]]] = {
    "vars-file": ("vars.json", ("prompts", "render", "greet", "--vars-file", "vars.json"), {}),
    "cases-jsonl": (
        "evals/cases.jsonl",
        ("eval", "run", "evals/s.yaml", "--dry-run"),
        {"evals/s.yaml": SUITE_WITH_CASES.format("cases.jsonl")},
    ),
    "cases-csv": (
        "evals/cases.csv",
        ("eval", "run", "evals/s.yaml", "--dry-run"),
        {"evals/s.yaml": SUITE_WITH_CASES.format("cases.csv")},
    ),
}
DATA_CONTENT: dict[str, tuple[Content, str]] = {
    "binary": (BINARY, "not a text file"),
    "latin1": ('{"name": "caf\xe9"}\n'.encode("latin-1"), "not UTF-8"),
    "nul": (b'{"name": "a\x00"}\n', "not a text file"),
    "huge": (Huge(11 * MB), "larger than 10 MB"),
    "directory": (Dir, "is a directory"),
}
JSON_CONTENT: dict[str, tuple[Content, str]] = {
    "deep": ('{"vars": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested more than 64"),
    "invalid": ('{"vars": {"name": "Ann"\n', "invalid JSON"),
    "not-an-object": ("[1, 2, 3]\n", "object"),
}


def _file_cases() -> list[Bad]:
    cases = []
    for kind, (path, args, extra) in YAML_FILES.items():
        for name, (content, expect) in YAML_CONTENT.items():
            files = {**extra, path: content}
            cases.append(Bad(f"{kind}-{name}", args, files, expect=expect))
        if kind in DIRECTORY_READS:
            cases.append(Bad(f"{kind}-directory", args, {path: Dir}, expect=DIRECTORY_READS[kind]))
    # the prompt file again, through `render` and `validate`, and without extension issues
    cases += [
        Bad("prompt-render-bomb", ("prompts", "render", "bad"),
            {"prompts/bad.yaml": BILLION_LAUGHS}, expect="aliases expand"),
        Bad("prompt-render-binary", ("prompts", "render", "bad", "--var", "name=x"),
            {"prompts/bad.yaml": PNG}, expect="not a text file"),
        Bad("prompt-deep-sequence", ("prompts", "show", "bad"),
            {"prompts/bad.yaml": DEEP_SEQUENCE}, expect="nested more than 64"),
        Bad("prompt-recursive-map", ("prompts", "show", "bad"),
            {"prompts/bad.yaml": RECURSIVE_MAP}, expect="recursive alias"),
        Bad("prompt-duplicate-field", ("prompts", "show", "bad"),
            {"prompts/bad.yaml": "template: hi\nmodel: a\ntemplate: ho\n"},
            expect="bad.yaml:3: duplicate key 'template'"),
        Bad("prompt-empty", ("prompts", "show", "bad"), {"prompts/bad.yaml": ""},
            expect="empty file"),
        Bad("prompt-only-bom-and-nul", ("prompts", "show", "bad"),
            {"prompts/bad.yaml": b"\xef\xbb\xbf\x00"}, expect="not a text file"),
        Bad("prompt-validate-bomb", ("prompts", "validate"),
            {"prompts/bad.yaml": BILLION_LAUGHS}, expect="aliases expand"),
        Bad("labels-via-promote",
            ("prompts", "promote", "greet", "0123456789ab", "--label", "prod"),
            {"prompts/labels.yaml": BILLION_LAUGHS}, expect="aliases expand"),
        Bad("suite-empty", ("eval", "run", "evals/bad.yaml", "--dry-run"),
            {"evals/bad.yaml": ""}, expect="expected a mapping"),
        Bad("suite-directory-of-bombs", ("eval", "run", "evals", "--dry-run"),
            {"evals/bomb.yaml": BILLION_LAUGHS}, expect="aliases expand"),
        Bad("suite-cases-file-missing", ("eval", "run", "evals/s.yaml", "--dry-run"),
            {"evals/s.yaml": SUITE_WITH_CASES.format("nope.jsonl")}, expect="no such file"),
        Bad("prices-from-env-binary", ("eval", "run", "evals/ok.yaml", "--dry-run"),
            {"my-prices.yaml": BINARY}, env={"LLMOPS_PRICES": "my-prices.yaml"},
            expect="not a text file"),
        Bad("prices-from-env-missing", ("eval", "run", "evals/ok.yaml", "--dry-run"),
            env={"LLMOPS_PRICES": "{tmp}/nope.yaml"}, expect="no such file"),
        Bad("prices-infinite", ("costs", "recompute", "--since", "1d", "--prices", "p.yaml"),
            {"p.yaml": "models:\n  m:\n    input_per_million: 1e400\n    output_per_million: 1\n"},
            expect="p.yaml:3: models.m.input_per_million: must be a finite number"),
        Bad("prices-nan", ("costs", "recompute", "--since", "1d", "--prices", "p.yaml"),
            {"p.yaml": "models:\n  m:\n    input_per_million: .nan\n    output_per_million: 1\n"},
            expect="finite"),
        Bad("prices-negative", ("costs", "recompute", "--since", "1d", "--prices", "p.yaml"),
            {"p.yaml": "models:\n  m:\n    input_per_million: 1\n    output_per_million: -3\n"},
            expect="p.yaml:4: models.m.output_per_million"),
        Bad("prices-default-file-bomb", ("costs", "recompute", "--since", "1d"),
            {"prices.yaml": BILLION_LAUGHS}, expect="aliases expand"),
        Bad("config-from-env-binary", ("spend",), {"cfg.yaml": PNG},
            env={"LLMOPS_CONFIG": "cfg.yaml"}, expect="not a text file"),
        Bad("config-from-env-missing", ("prompts", "list"),
            env={"LLMOPS_CONFIG": "{tmp}/nope.yaml"}, expect="no such file"),
        Bad("config-from-env-directory", ("prompts", "list"), {"cfgdir": Dir},
            env={"LLMOPS_CONFIG": "cfgdir"}, expect="is a directory"),
        Bad("config-infinite-budget", ("prompts", "list"),
            {"llmops.yaml": "budgets:\n  daily_usd: .inf\n"}, expect="budgets.daily_usd"),
        Bad("config-a-list", ("prompts", "list"), {"llmops.yaml": "- 1\n"},
            expect="expected a mapping"),
    ]  # fmt: skip
    for kind, (path, args, extra) in DATA_FILES.items():
        contents = dict(DATA_CONTENT)
        if kind != "cases-csv":
            contents.update(JSON_CONTENT)
        for name, (content, expect) in contents.items():
            cases.append(Bad(f"{kind}-{name}", args, {**extra, path: content}, expect=expect))
    cases += [
        Bad("vars-file-missing", ("prompts", "render", "greet", "--vars-file", "nope.json"),
            expect="no such file"),
        Bad("vars-file-empty", ("prompts", "render", "greet", "--vars-file", "v.json"),
            {"v.json": ""}, expect="invalid JSON"),
        Bad("cases-csv-field-too-large", ("eval", "run", "evals/s.yaml", "--dry-run"),
            {"evals/s.yaml": SUITE_WITH_CASES.format("cases.csv"),
             "evals/cases.csv": "name\n" + "x" * 200_000 + "\n"}, expect="invalid CSV"),
        Bad("cases-csv-extra-values", ("eval", "run", "evals/s.yaml", "--dry-run"),
            {"evals/s.yaml": SUITE_WITH_CASES.format("cases.csv"),
             "evals/cases.csv": "name\nAnn,extra\n"}, expect="cases.csv:2: more values"),
        Bad("cases-jsonl-bad-assert", ("eval", "run", "evals/s.yaml", "--dry-run"),
            {"evals/s.yaml": SUITE_WITH_CASES.format("cases.jsonl"),
             "evals/cases.jsonl": '{"assert": [{"type": "regex", "value": "("}]}\n'},
            expect="cases.jsonl:1"),
        Bad("cases-file-wrong-extension", ("eval", "run", "evals/s.yaml", "--dry-run"),
            {"evals/s.yaml": SUITE_WITH_CASES.format("cases.txt"), "evals/cases.txt": "x"},
            expect=".jsonl or .csv"),
    ]  # fmt: skip
    return cases


# -- numbers, dates and choices --------------------------------------------------------------

HUGE_NUMBER = str(10**30)
OFFLINE_EVAL = ("eval", "run", "evals/ok.yaml", "--offline")
NUMERIC_OPTIONS: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
    # (command, option, bad values)
    (("spend",), "--days", ("0", "-1", HUGE_NUMBER, "nan", "inf", "99999", "1.5")),
    (("spend",), "--top", ("0", "-5", HUGE_NUMBER, "nan", "1e3", "1000001")),
    (("calls",), "--limit", ("0", "-1", HUGE_NUMBER, "nan", "inf", "100001")),
    (("calls",), "--days", ("0", HUGE_NUMBER, "-inf")),
    (("dashboard",), "--port", ("-1", "0", "65536", HUGE_NUMBER, "nan", "80.5")),
    (("demo", "--no-dashboard"), "--port", ("-1", "70000", HUGE_NUMBER)),
    (("demo", "--no-dashboard"), "--calls", ("0", "-3", HUGE_NUMBER, "nan")),
    (("demo", "--no-dashboard"), "--days", ("0", HUGE_NUMBER, "inf")),
    (OFFLINE_EVAL, "--concurrency", ("0", "-2", HUGE_NUMBER, "nan")),
    (OFFLINE_EVAL, "--repeat", ("0", "101", HUGE_NUMBER, "inf")),
]  # fmt: skip


def _number_cases() -> list[Bad]:
    cases = []
    for command, option, values in NUMERIC_OPTIONS:
        for value in values:
            name = f"{'-'.join(command[:2])}{option}={value[:12]}"
            cases.append(Bad(name, (*command, option, value), expect=f"'{option}'"))
    recompute = ("costs", "recompute")
    cases += [
        Bad("since-99999999d", (*recompute, "--since", "99999999d"), expect="too far back"),
        Bad("since-10**30d", (*recompute, "--since", HUGE_NUMBER + "d"), expect="too far back"),
        Bad("since-year-1", (*recompute, "--since", "0001-01-01"), expect="from 1970-01-01"),
        Bad("since-year-9999", (*recompute, "--since", "9999-12-31"), expect="from 1970-01-01"),
        Bad("since-far-offset", (*recompute, "--since", "0001-01-01T00:00+05:00"),
            expect="from 1970-01-01"),
        Bad("since-feb-30", (*recompute, "--since", "2026-02-30"), expect="expected a date"),
        Bad("since-words", (*recompute, "--since", "yesterday"), expect="expected a date"),
        Bad("since-empty", (*recompute, "--since", ""), expect="expected a date"),
        Bad("since-negative-span", (*recompute, "--since", "-5d"), expect="expected a date"),
        Bad("since-superscript", (*recompute, "--since", "\u00b2d"), expect="expected a date"),
        Bad("until-before-since", (*recompute, "--since", "2026-03-01", "--until", "2026-02-01"),
            expect="is not after --since"),
        Bad("until-equals-since", (*recompute, "--since", "2026-03-01", "--until", "2026-03-01"),
            expect="is not after --since"),
        Bad("until-absurd", (*recompute, "--since", "1d", "--until", "99999-01-01"),
            expect="--until"),
        Bad("calls-status-bogus", ("calls", "--status", "bogus"),
            expect="--status 'bogus': expected one of ok, error, cancelled"),
        Bad("calls-status-one-bad", ("calls", "--status", "ok", "--status", "OK"),
            expect="expected one of ok, error, cancelled"),
        Bad("spend-by-weather", ("spend", "--by", "weather"), expect="'--by'"),
        Bad("spend-format-xml", ("spend", "--format", "xml"), expect="'--format'"),
        Bad("feedback-score-nan", ("feedback", CALL_ID, "nan"), expect="finite number"),
        Bad("feedback-score-inf", ("feedback", CALL_ID, "inf"), expect="finite number"),
        Bad("feedback-score-1e400", ("feedback", CALL_ID, "1e400"), expect="finite number"),
        Bad("feedback-score-neg-inf", ("feedback", CALL_ID, "--", "-inf"), expect="finite"),
        Bad("feedback-score-word", ("feedback", CALL_ID, "great"), expect="must be a number"),
        Bad("feedback-call-id", ("feedback", "not-a-call", "1"), expect="is not a call id"),
        Bad("feedback-empty-name", ("feedback", CALL_ID, "1", "--name", ""), expect="--name"),
        Bad("feedback-long-user", ("feedback", CALL_ID, "1", "--user", "u" * 201),
            expect="--user"),
        Bad("dashboard-address", ("dashboard", "--address", "not an address!"),
            expect="--address"),
        # governance: retention ages, verification windows, the report's arguments
        Bad("prune-nothing", ("db", "prune"), expect="nothing to prune"),
        Bad("prune-word", ("db", "prune", "--content-older-than", "soon"),
            expect="expected days such as 30d"),
        Bad("prune-zero", ("db", "prune", "--content-older-than", "0d"), expect="between 1 day"),
        Bad("prune-huge", ("db", "prune", "--calls-older-than", HUGE_NUMBER + "d"),
            expect="--calls-older-than"),
        Bad("prune-negative", ("db", "prune", "--calls-older-than=-5d"),
            expect="expected days such as 30d"),
        Bad("prune-young-calls", ("db", "prune", "--calls-older-than", "30d"),
            expect="younger than 183 days"),
        Bad("prune-config-too-short", ("db", "prune"),
            files={"llmops.yaml": "retention:\n  calls_days: 30\n"}, expect="minimum_days"),
        Bad("verify-since-words", ("audit", "verify", "--since", "yesterday"),
            expect="expected a date"),
        Bad("verify-until-before", ("audit", "verify", "--since", "2026-03-01", "--until",
            "2026-02-01"), expect="is not after --since"),
        # (the corpus's project is no git repository: the report needs its history first;
        # unknown prompts and references in a repository: tests/audit/test_report.py)
        Bad("report-not-git", ("audit", "report", "greet"), expect="needs git"),
        Bad("report-format", ("audit", "report", "greet", "--format", "pdf"), expect="--format"),
        Bad("report-to-before-from", ("audit", "report", "greet", "--from", "2026-03-01", "--to",
            "2026-02-01"), expect="--to"),
        Bad("report-out-dir", ("audit", "report", "greet", "--out", "adir"), {"adir": Dir},
            expect="adir"),
    ]  # fmt: skip
    return cases


# -- databases, folders and the environment -------------------------------------------------

BAD_DATABASES = {
    # name: (URL, files, a part of the message)
    "proc": ("sqlite:////proc/nope/x.db", {}, "cannot create"),
    "directory": ("sqlite:///{tmp}/adir", {"adir": Dir}, "is a directory"),
    "text-file": ("sqlite:///{tmp}/notes.txt", {"notes.txt": "hello\n"}, "not an SQLite database"),
    "under-a-file": ("sqlite:///{tmp}/notes.txt/x.db", {"notes.txt": "hi\n"}, "not a directory"),
    "pg-port": ("postgresql://u@127.0.0.1:99999/x", {}, "port 99999"),
}
DATABASE_COMMANDS: dict[str, tuple[str, ...]] = {
    "db-status": ("db", "status"),
    "db-upgrade": ("db", "upgrade"),
    "spend": ("spend",),
    "calls": ("calls",),
    "recompute": ("costs", "recompute", "--since", "1d"),
    "prune": ("db", "prune", "--content-older-than", "30d"),
    "verify": ("audit", "verify"),
    "report": ("audit", "report", "greet"),
    "feedback": ("feedback", CALL_ID, "1"),
    "dashboard": ("dashboard",),
    "eval": ("eval", "run", "evals/ok.yaml", "--offline"),
    "demo": ("demo", "--no-dashboard", "--no-evals", "--calls", "10"),
}


def _database_cases() -> list[Bad]:
    cases = []
    for db, (url, files, expect) in BAD_DATABASES.items():
        for name, command in DATABASE_COMMANDS.items():
            if db in ("under-a-file", "pg-port") and name not in ("db-status", "eval"):
                continue
            # commands that read or change a database that is there create nothing
            looks = name in (
                "db-status",
                "recompute",
                "prune",
                "verify",
                "spend",
                "calls",
                "feedback",
            ) and db in (
                "proc",
                "under-a-file",
            )
            cases.append(Bad(f"db-{db}-{name}", (*command, "--database-url", url), files,
                             expect="no such database file" if looks else expect))  # fmt: skip
    cases += [
        Bad("db-url-from-env", ("calls",), env={"LLMOPS_DATABASE_URL": "sqlite:////proc/nope/x.db"},
            expect="/proc/nope/x.db: no such database file"),  # `calls` only looks
        Bad("db-url-from-env-upgrade", ("db", "upgrade"),
            env={"LLMOPS_DATABASE_URL": "sqlite:////proc/nope/x.db"}, expect="cannot create"),
        Bad("db-url-garbage", ("db", "status", "--database-url", "not a url"),
            expect="bad database URL"),
        Bad("db-url-mysql", ("spend", "--database-url", "mysql://u@h/db"),
            expect="unsupported database"),
        Bad("db-url-pg-port-word", ("db", "status", "--database-url", "postgresql://u@h:abc/x"),
            expect="database URL"),
        Bad("home-etc-passwd", ("prompts", "list"), env={"LLMOPS_HOME": "/etc/passwd"},
            expect="not a directory"),
        Bad("home-a-file-spend", ("spend",), {"state": "x"},
            env={"LLMOPS_HOME": "{tmp}/state", "LLMOPS_DATABASE_URL": ""},
            expect="not a directory"),
        Bad("home-under-a-file", ("eval", "run", "evals/ok.yaml", "--dry-run"), {"state": "x"},
            env={"LLMOPS_HOME": "{tmp}/state/sub"}, expect="not a directory"),
        Bad("home-in-proc-eval", ("eval", "run", "evals/ok.yaml", "--dry-run"),
            env={"LLMOPS_HOME": "/proc/nope"}, expect="cannot create"),
        Bad("home-in-proc-default-db", ("calls",),
            env={"LLMOPS_HOME": "/proc/nope", "LLMOPS_DATABASE_URL": ""},
            expect="/proc/nope/llmops.db: no such database file"),
        Bad("home-in-proc-default-db-upgrade", ("db", "upgrade"),
            env={"LLMOPS_HOME": "/proc/nope", "LLMOPS_DATABASE_URL": ""}, expect="cannot create"),
        Bad("eval-cache-not-sqlite", ("eval", "run", "evals/ok.yaml", "--dry-run"),
            {"home/eval-cache.db": "not a database\n"}, expect="not an SQLite database"),
        Bad("content-loud", ("prompts", "list"), env={"LLMOPS_CONTENT": "loud"},
            expect="LLMOPS_CONTENT='loud'"),
        Bad("budget-nan", ("prompts", "list"), env={"LLMOPS_DAILY_BUDGET": "nan"},
            expect="LLMOPS_DAILY_BUDGET"),
        Bad("budget-inf", ("spend",), env={"LLMOPS_MONTHLY_BUDGET": "inf"},
            expect="LLMOPS_MONTHLY_BUDGET"),
        Bad("budget-1e400", ("prompts", "list"), env={"LLMOPS_DAILY_BUDGET": "1e400"},
            expect="finite"),
        Bad("budget-negative", ("prompts", "list"), env={"LLMOPS_DAILY_BUDGET": "-5"},
            expect="more than 0"),
        Bad("budget-word", ("prompts", "list"), env={"LLMOPS_DAILY_BUDGET": "lots"},
            expect="amount in USD"),
        Bad("prompts-dir-a-file-env", ("prompts", "list"), {"notes.txt": "x"},
            env={"LLMOPS_PROMPTS_DIR": "notes.txt"}, expect="not a directory"),
        Bad("prompts-dir-a-file-option", ("prompts", "show", "greet", "--dir", "notes.txt"),
            {"notes.txt": "x"}, expect="not a directory"),
        Bad("eval-prompts-dir-a-file", ("eval", "run", "evals/ok.yaml", "--prompts-dir",
            "notes.txt"), {"notes.txt": "x"}, expect="not a directory"),
    ]  # fmt: skip
    return cases


# -- eval run: reports, assertions, references ------------------------------------------------

SUITE = "prompt: greet\ncases:\n  - vars: {{name: Ann}}\n    assert:\n      - {}\n"
EVAL = ("eval", "run", "evals/x.yaml", "--offline")


def _eval_cases() -> list[Bad]:
    def suite(assertion: str) -> dict[str, Content]:
        return {"evals/x.yaml": SUITE.format(assertion)}

    ok = ("eval", "run", "evals/ok.yaml", "--offline")
    return [
        Bad("eval-json-nonexistent-folder", (*ok, "--json", "/nonexistent/x.json"),
            expect="--json report: no folder /nonexistent"),
        Bad("eval-junit-a-directory", (*ok, "--junit", "{tmp}"), expect="is a directory"),
        Bad("eval-markdown-under-a-file", (*ok, "--markdown", "{tmp}/notes.txt/x.md"),
            {"notes.txt": "x"}, expect="not a folder"),
        Bad("eval-json-empty-name", (*ok, "--json", ""), expect="--json"),
        Bad("eval-invalid-json-schema", EVAL, suite("{type: json-schema, value: {type: 12}}"),
            expect="x.yaml:5: case #1.assert[0]: json-schema: not a valid JSON Schema"),
        Bad("eval-is-json-bad-schema", EVAL,
            suite("{type: is-json, value: {type: object, required: name}}"),
            expect="is-json: not a valid JSON Schema"),
        Bad("eval-is-json-schema-dialect-not-text", EVAL,
            suite("{type: is-json, value: {$schema: 1, type: object}}"),
            expect="is-json: not a valid JSON Schema: $schema must be a URI string"),
        Bad("eval-is-json-not-a-schema", EVAL, suite("{type: is-json, value: [1]}"),
            expect="is-json: value must be a JSON Schema"),
        Bad("eval-invalid-regex", EVAL, suite("{type: regex, value: '(unclosed'}"),
            expect="regex '(unclosed'"),
        Bad("eval-contains-any-string", EVAL, suite("{type: contains-any, value: abc}"),
            expect="non-empty list"),
        Bad("eval-cost-word", EVAL, suite("{type: cost, value: cheap}"), expect="cost: value"),
        Bad("eval-latency-negative", EVAL, suite("{type: latency, value: -1}"), expect="latency"),
        Bad("eval-weight-inf", EVAL, suite("{type: contains, value: a, weight: .inf}"),
            expect="weight must be a finite number"),
        Bad("eval-python-missing-file", EVAL, suite("{type: python, value: 'nope.py:f'}"),
            expect="python: no file"),
        Bad("eval-python-inline-syntax", EVAL, suite("{type: python, value: 'output.('}"),
            expect="python: inline code is not valid Python"),
        Bad("eval-is-sql-database", EVAL, suite("{type: is-sql, value: {databaseType: DB2}}"),
            expect="databaseType 'DB2' is not supported"),
        Bad("eval-file-value-missing", EVAL, suite("{type: equals, value: 'file://nope.txt'}"),
            expect="file://nope.txt: "),
        Bad("eval-transform-syntax", EVAL, suite("{type: equals, value: a, transform: 'a b'}"),
            expect="transform is not valid Python"),
        Bad("eval-defaults-bad-schema", EVAL,
            {"evals/x.yaml": "prompt: greet\ndefaults:\n  assert:\n"
             "    - {type: not-json-schema, value: {minLength: -1}}\n"
             "cases:\n  - vars: {name: Ann}\n"},
            expect="x.yaml:4: defaults.assert[0]"),
        Bad("eval-unknown-assertion", EVAL, suite("{type: sounds-right}"),
            expect="unknown assertion type"),
        Bad("eval-suite-missing", ("eval", "run", "evals/nope.yaml"), expect="no such suite"),
        Bad("eval-unknown-prompt", EVAL, {"evals/x.yaml": "prompt: nope\ncases: [{}]\n"},
            expect="no prompt 'nope'"),
        Bad("eval-threshold-nan", EVAL,
            {"evals/x.yaml": "prompt: greet\nthreshold: .nan\ncases: [{}]\n"},
            expect="threshold"),
    ]  # fmt: skip


# -- usage errors click finds ------------------------------------------------------------------


def _usage_cases() -> list[Bad]:
    return [
        Bad("usage-unknown-command", ("frobnicate",), expect="No such command"),
        Bad("usage-unknown-subcommand", ("db", "frobnicate"), expect="No such command"),
        Bad("usage-unknown-option", ("spend", "--bogus"), expect="No such option: --bogus"),
        Bad("usage-unknown-root-option", ("--bogus",), expect="No such option"),
        Bad("usage-missing-argument", ("prompts", "show"), expect="Missing argument"),
        Bad("usage-missing-arguments", ("feedback",), expect="Missing argument"),
        Bad("usage-missing-option", ("costs", "recompute"), expect="Missing option '--since'"),
        Bad("usage-missing-label", ("prompts", "promote", "greet", "0123456789ab"),
            expect="Missing option"),
        Bad("usage-option-without-value", ("spend", "--days"), expect="requires an argument"),
        Bad("usage-extra-argument", ("prompts", "list", "extra"), expect="unexpected extra"),
        Bad("usage-bad-var", ("prompts", "render", "greet", "--var", "novalue"),
            expect="expected NAME=VALUE"),
        Bad("prompt-name-too-long", ("prompts", "show", "a" * 300), expect="file name too long"),
        Bad("prompt-name-escapes", ("prompts", "show", "../etc/passwd"),
            expect="is not a prompt name"),
        Bad("prompt-ref-empty-version", ("prompts", "show", "greet@"), expect="nothing after '@'"),
        Bad("prompt-log-needs-git", ("prompts", "log", "greet"), expect="git"),
        Bad("prompt-label-needs-git", ("prompts", "show", "greet@production"), expect="git"),
        Bad("prompts-validate-missing-dir", ("prompts", "validate", "--dir", "nope"),
            expect="no such prompt folder"),
    ]  # fmt: skip


CASES: list[Bad] = [*_file_cases(), *_number_cases(), *_database_cases(), *_eval_cases(),
                    *_usage_cases()]  # fmt: skip

# A handful also run as a real process (``python -m llmops``), to prove that the installed
# entry point behaves as ``llmops.cli.main`` does in-process.
SUBPROCESS = (
    "usage-unknown-option",
    "prompt-billion-laughs",
    "suite-binary",
    "spend--top=100000000000",
    "db-proc-db-status",
    "eval-json-nonexistent-folder",
    "prices-infinite",
)
