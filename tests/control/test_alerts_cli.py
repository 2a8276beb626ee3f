"""``llmops alerts check`` and ``llmops alerts list`` (the in-process ``cli``), and the
``alerts:`` section of llmops.yaml: bad configuration is one ``error:`` line and exit 2."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops.config import Settings
from llmops.store.engine import check_schema, create_engine
from tests.control.receivers import HttpReceiver
from tests.control.test_alerts import TOKEN, call, seed_calls

CONFIG = """\
budgets:
  limits:
    - {name: monthly, window: month, limit_usd: 50}
alerts:
  channels:
    - {name: hook, type: webhook, url_env: HOOK_URL}
    - {name: log, type: log}
  rules:
    - {name: errors, kind: error_rate, window: 15m, threshold: 0.1, min_calls: 5, channels: [hook, log]}
    - {name: budgets, kind: budget, channels: [hook]}
  check_interval: 30s
"""  # noqa: E501


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, receiver: HttpReceiver) -> tuple[Path, dict[str, str], str]:
    """A folder with llmops.yaml, the environment the CLI runs with, and the database."""
    (tmp_path / "llmops.yaml").write_text(CONFIG)
    url = f"sqlite:///{tmp_path / 'state' / 'llmops.db'}"
    env = {"HOOK_URL": receiver.url(f"/{TOKEN}"), "LLMOPS_DATABASE_URL": url}
    return tmp_path, env, url


def seed_errors(url: str, errors: int) -> None:
    engine = create_engine(url)
    check_schema(engine)
    now = datetime.now(UTC)
    seed_calls(engine, [call(now - timedelta(minutes=2), status="error" if i < errors else "ok")
                        for i in range(10)])  # fmt: skip


def test_check_notifies_once_and_list_shows_it(cli, project, receiver) -> None:
    folder, env, url = project
    seed_errors(url, 5)
    dry = cli("alerts", "check", "--dry-run", cwd=folder, env=env)
    assert dry.code == 1, dry.stderr
    assert receiver.requests == []
    header, row = dry.stdout.splitlines()[:2]
    assert header.split() == ["RULE", "SUBJECT", "STATUS", "VALUE", "THRESHOLD", "WOULD",
                              "MESSAGE"]  # fmt: skip
    assert row.split()[:6] == ["errors", "gpt-4o", "firing", "50.0%", "10.0%", "fire"]
    assert dry.stdout.splitlines()[-1] == (
        "Dry run: 1 would fire, 0 would resolve; nothing was sent or stored."
    )

    first = cli("alerts", "check", cwd=folder, env=env)
    assert first.code == 1, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == (
        "FIRED  errors: gpt-4o: 50.0% of 10 calls failed in the last 15m (alert above 10.0%)"
        "  -> hook, log"
    )
    assert lines[1].startswith("Checked 1 condition(s) at ")
    assert lines[1].endswith(": 1 fired, 0 resolved, 1 firing now.")
    assert "alert fired: errors: gpt-4o: 50.0%" in first.stderr  # the log channel
    assert [b["rule"] for b in receiver.bodies()] == ["errors"]

    again = cli("alerts", "check", "--json", cwd=folder, env=env)
    assert again.code == 0, again.stderr
    data = json.loads(again.stdout)
    assert (data["fired"], data["resolved"], data["events"], data["dry_run"]) == (0, 0, [], False)
    assert [(c["rule"], c["subject"], c["status"]) for c in data["conditions"]] == [
        ("errors", "gpt-4o", "firing")
    ]
    assert len(receiver.requests) == 1

    listed = cli("alerts", "list", cwd=folder, env=env)
    assert listed.code == 0, listed.stderr
    table = listed.stdout.splitlines()
    assert table[0].split() == ["STATE", "RULE", "KIND", "SUBJECT", "VALUE", "THRESHOLD", "SINCE"]
    assert table[1].split()[:6] == ["firing", "errors", "error_rate", "gpt-4o", "50.0%", "10.0%"]
    assert table[3].split() == ["AT", "EVENT", "RULE", "SUBJECT", "DELIVERED", "FAILED"]
    assert table[4].split()[2:] == ["fired", "errors", "gpt-4o", "hook,", "log"]
    as_json = json.loads(cli("alerts", "list", "--json", cwd=folder, env=env).stdout)
    assert [a["key"] for a in as_json["alerts"]] == ["errors|gpt-4o"]
    assert as_json["events"][0]["delivered"] == ["hook", "log"]
    assert TOKEN not in listed.stdout + json.dumps(as_json)


def test_a_failed_delivery_exits_1_and_is_listed(cli, project, receiver) -> None:
    folder, env, url = project
    seed_errors(url, 5)
    receiver.status = 500
    (folder / "llmops.yaml").write_text(CONFIG.replace("[hook, log]", "[hook]"))
    result = cli("alerts", "check", cwd=folder, env=env)
    assert result.code == 1
    assert result.stdout.splitlines()[:2] == [
        "FIRED  errors: gpt-4o: 50.0% of 10 calls failed in the last 15m (alert above 10.0%)"
        "  -> nobody",
        "  delivery failed: hook: HTTP 500",
    ]
    listed = cli("alerts", "list", "--all", cwd=folder, env=env)
    assert "No alert has fired yet." in listed.stdout  # undone: the next check tries again
    assert "HTTP 500" in listed.stdout
    assert TOKEN not in result.stdout + result.stderr + listed.stdout


def test_nothing_to_check(cli, tmp_path: Path) -> None:
    result = cli("alerts", "check", cwd=tmp_path,
                 env={"LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})  # fmt: skip
    assert (result.code, result.stdout) == (
        0, "No alert rules: declare them under alerts.rules in llmops.yaml.\n"
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'x.db'}"
    listed = cli("alerts", "list", "--database-url", url, cwd=tmp_path)
    # a file nobody made is a mistyped path: `alerts list` only looks, and makes nothing
    assert listed.code == 2 and "no such database file" in listed.stderr, listed.stderr
    assert not (tmp_path / "x.db").exists()
    assert cli("db", "upgrade", "--database-url", url, cwd=tmp_path).code == 0
    listed = cli("alerts", "list", "--database-url", url, cwd=tmp_path)
    assert (listed.code, listed.stdout) == (0, "No alert is firing.\n")


ERRORS_RULE = "    - {name: errors, kind: error_rate, window: 15m, threshold: 0.1, min_calls: 5, channels: [hook, log]}\n"  # noqa: E501


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((ERRORS_RULE, "    - {name: e, kind: error_rat, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0: Input tag 'error_rat' found using 'kind' does not "
         "match any of the expected tags: 'budget', 'spend_anomaly', 'error_rate', "
         "'latency_p95', 'feedback_drift', 'eval_drop'"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, channels: [hook, pager]}\n"),
         "llmops.yaml:8: alerts.rules: rule 'e' names channel 'pager', which alerts.channels "
         "does not declare (hook, log)"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, window: soon, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0.error_rate.window: expected a duration like 90s, 15m, "
         "2h, 1d or 1w"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, window: 90d, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0.error_rate.window: expected a duration from 1m to 31d"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, threshold: 5, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0.error_rate.threshold: Input should be less than 1"),
        ((ERRORS_RULE, "    - {name: s, kind: latency_p95, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0.latency_p95: give factor (times the p95 of the "
         "previous days) or threshold_ms, one of them"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, channels: []}\n"),
         "llmops.yaml:9: alerts.rules.0.error_rate.channels: Tuple should have at least 1 "
         "item after validation, not 0"),
        ((ERRORS_RULE, ERRORS_RULE * 2),
         "llmops.yaml:8: alerts.rules: two rules are named 'errors'"),
        ((ERRORS_RULE, "    - {name: e, kind: error_rate, url: x, channels: [hook]}\n"),
         "llmops.yaml:9: alerts.rules.0.error_rate.url: Extra inputs are not permitted"),
        ((ERRORS_RULE, "    - {name: b, kind: budget, budget: weekly, channels: [hook]}\n"),
         "llmops.yaml:4: alerts: rule 'b' names budget 'weekly', which budgets.limits does not "
         "declare (monthly)"),
        (("url_env: HOOK_URL}", "url: 'https://hooks.example/T0/B0/secret'}"),
         "llmops.yaml:6: alerts.channels.0.webhook: 'url' would put a credential in the "
         "file: set an environment variable to it and name the variable in url_env"),
        (("- {name: log, type: log}",
          "- {name: log, type: email, to: [x@y.z], from: a@b.c, password: hunter2secret}"),
         "llmops.yaml:7: alerts.channels.1.email: 'password' would put a credential in the "
         "file: set an environment variable to it and name the variable in password_env"),
        (("url_env: HOOK_URL}", "url_env: 'https://hooks.example/T0/B0/secret'}"),
         "llmops.yaml:6: alerts.channels.0.webhook.url_env: String should match pattern "
         "'^[A-Za-z_][A-Za-z0-9_]*$'"),
        (("- {name: log, type: log}", "- {name: log, type: pager}"),
         "llmops.yaml:7: alerts.channels.1: Input tag 'pager' found using 'type' does not match "
         "any of the expected tags: 'slack', 'webhook', 'email', 'log'"),
        (("- {name: log, type: log}",
          "- {name: log, type: email, to: [not-an-address], from: a@b.c}"),
         "llmops.yaml:7: alerts.channels.1.email.to.0: expected an e-mail address like "
         "oncall@example.com"),
        (("- {name: log, type: log}", "- {name: log, type: email, to: [x@y.z], from: a@b.c, "
          "username_env: U}"),
         "llmops.yaml:7: alerts.channels.1.email: give both username_env and password_env, or "
         "neither"),
        (("- {name: log, type: log}", "- {name: hook, type: log}"),
         "llmops.yaml:5: alerts.channels: two channels are named 'hook'"),
        (("check_interval: 30s", "check_interval: 1s"),
         "llmops.yaml:11: alerts.check_interval: expected a duration from 5s to 1d"),
    ],
)  # fmt: skip
def test_bad_config_is_one_error_line_and_exit_2(cli, project, change, expected) -> None:
    folder, env, _ = project
    text = CONFIG.replace(*change)
    assert text != CONFIG
    (folder / "llmops.yaml").write_text(text)
    for command in (["alerts", "check"], ["alerts", "check", "--dry-run"], ["budgets"]):
        result = cli(*command, cwd=folder, env=env)
        assert (result.code, result.stdout) == (2, ""), (command, result.stdout)
        assert result.stderr == f"error: {expected}\n"
        assert "secret" not in result.stderr


def test_a_missing_environment_variable_is_named_at_check_time(cli, project) -> None:
    folder, env, _ = project
    without = {**env, "HOOK_URL": ""}
    result = cli("alerts", "check", cwd=folder, env=without)
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: alert channel 'hook': environment variable HOOK_URL is not set\n"
    )
    # the rest of llmops does not need the variable
    assert cli("budgets", cwd=folder, env=without).code == 0
    assert cli("alerts", "list", cwd=folder, env=without).code == 0


def test_settings_carry_the_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llmops.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    alerts = Settings.from_env({}).alerts
    assert [rule.name for rule in alerts.rules] == ["errors", "budgets"]
    assert alerts.check_interval == timedelta(seconds=30)
    assert alerts.timeout == timedelta(seconds=10)
    (tmp_path / "llmops.yaml").write_text("alerts:\n")
    assert Settings.from_env({}).alerts.rules == ()
    (tmp_path / "llmops.yaml").write_text(
        textwrap.dedent("""\
        alerts:
          channels:
          rules:
        """)
    )
    assert Settings.from_env({}).alerts.channels == ()


def test_a_checker_from_the_settings(project, receiver) -> None:
    from llmops.control.alerts import AlertChecker

    folder, env, url = project
    seed_errors(url, 5)
    checker = AlertChecker.from_settings(env={**env, "LLMOPS_CONFIG": str(folder / "llmops.yaml")})
    assert [rule.name for rule in checker.alerts.rules] == ["errors", "budgets"]
    assert [b.name for b in checker.budgets] == ["monthly"]
    assert [t.delivered for t in checker.check().fired] == [("hook", "log")]
    assert len(receiver.requests) == 1


def test_json_has_null_for_an_infinite_value(cli, project) -> None:
    """An infinite cost written by SQL (SQLite keeps it): `alerts check --json` printed the
    bare token Infinity, which strict JSON parsers (jq, JSON.parse) refuse."""
    folder, env, url = project
    engine = create_engine(url)
    check_schema(engine)
    seed_calls(engine, [call(datetime.now(UTC) - timedelta(minutes=1), cost_usd=float("inf"))])
    (folder / "llmops.yaml").write_text(
        CONFIG.replace("limit_usd: 50}", "limit_usd: 50}\n    - {name: daily, window: day, "
                       "limit_usd: 1}").replace("channels: [hook]}", "channels: [log]}")
    )  # fmt: skip

    def strict(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    result = cli("alerts", "check", "--json", "--dry-run", cwd=folder, env=env)
    data = json.loads(result.stdout, parse_constant=strict)
    assert [c["value"] for c in data["conditions"] if c["rule"] == "budgets"] == [None, None]
