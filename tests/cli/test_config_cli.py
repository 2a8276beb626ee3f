"""``llmops config check`` and ``llmops config schema``."""

from __future__ import annotations

import json

import jsonschema
import yaml

FULL = """\
budgets:
  daily_usd: 25
  limits:
    - {name: all-daily, window: day, limit_usd: 250, action: block}
    - {name: per-user, window: month, limit_usd: 20, scope: {user: each}, thresholds: [50, 100]}
    - {name: gpt4o, window: week, limit_usd: 1000, scope: {model: gpt-4o}, action: block,
       unreachable: block}
alerts:
  channels:
    - {name: ops-slack, type: slack, url_env: TEST_SLACK_URL}
    - {name: log, type: log}
  rules:
    - {name: budgets, kind: budget, channels: [ops-slack, log]}
    - {name: errors, kind: error_rate, window: 15m, threshold: 0.05, channels: [log]}
  check_interval: 60s
retention:
  content_days: 30
"""


def test_check_summarizes_a_valid_file(cli, tmp_path) -> None:
    (tmp_path / "llmops.yaml").write_text(FULL)
    env = {"TEST_SLACK_URL": "https://hooks.example.test/T000/B000/XXX"}
    result = cli("config", "check", cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == (
        "llmops.yaml: 3 budget(s), 2 blocking; 2 alert rule(s), 2 channel(s); retention: "
        "content 30 days, calls kept (at least 183): OK"
    )
    assert "hooks.example.test" not in result.stdout + result.stderr


def test_check_names_a_missing_channel_variable_unless_told_not_to(cli, tmp_path) -> None:
    (tmp_path / "llmops.yaml").write_text(FULL)
    missing = cli("config", "check", cwd=tmp_path)
    assert missing.code == 2 and len(missing.stderr.splitlines()) == 1
    assert missing.stderr.startswith("error: ") and "TEST_SLACK_URL" in missing.stderr
    assert cli("config", "check", "--no-env", cwd=tmp_path).code == 0


def test_check_gives_the_file_and_line_of_a_bad_budget(cli, tmp_path) -> None:
    (tmp_path / "llmops.yaml").write_text(FULL.replace("action: block}", "action: stop}", 1))
    bad = cli("config", "check", "--no-env", cwd=tmp_path)
    assert bad.code == 2 and bad.stderr.startswith("error: llmops.yaml:4: ")
    assert "action" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_a_scope_of_two_keys_names_every_key_a_scope_may_have(cli, tmp_path) -> None:
    """``key`` (a virtual key's budget) is a scope key as the others are: the message lists
    it, and a scope of it alone is accepted."""
    two = "    - {name: web, window: day, limit_usd: 5, scope: {key: web, user: ann}}\n"
    (tmp_path / "llmops.yaml").write_text(f"budgets:\n  limits:\n{two}")
    bad = cli("config", "check", "--no-env", cwd=tmp_path)
    assert bad.code == 2 and len(bad.stderr.splitlines()) == 1
    assert bad.stderr == (
        "error: llmops.yaml:3: budgets.limits.0.scope: a scope names one key "
        "(user, tag, prompt, model, source or key)\n"
    )
    (tmp_path / "llmops.yaml").write_text(f"budgets:\n  limits:\n{two.replace(', user: ann', '')}")
    assert cli("config", "check", "--no-env", cwd=tmp_path).code == 0


def test_the_schema_accepts_what_llmops_accepts_and_refuses_the_rest(cli, tmp_path) -> None:
    result = cli("config", "schema", cwd=tmp_path)
    assert result.code == 0
    validator = jsonschema.Draft202012Validator(json.loads(result.stdout))
    assert list(validator.iter_errors(yaml.safe_load(FULL))) == []
    for bad in (
        FULL.replace("window: day", "window: year"),
        FULL.replace("kind: error_rate", "kind: weather"),
        FULL.replace("url_env: TEST_SLACK_URL", "url: https://hooks.example.test/x"),
        FULL + "unknown_section: 1\n",
    ):
        assert list(validator.iter_errors(yaml.safe_load(bad))), bad
