"""``llmops.config``: settings from the environment and from ``llmops.yaml``.

Every test runs in an empty folder (``monkeypatch.chdir``), because the defaults
(``./.llmops``, ``./prompts``, ``./prices.yaml``, ``./llmops.yaml``) are relative to the
current directory. Most pass the environment to ``Settings.from_env`` as a dict; the
root conftest has cleared every ``LLMOPS_*`` variable from ``os.environ`` anyway.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llmops.config import (
    CONTENT_MODES,
    ConfigFile,
    Settings,
    default_database_url,
    read_config_file,
)
from llmops.errors import ConfigError, ConfigFileError
from llmops.files import MAX_YAML_BYTES

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# -- defaults and every variable --------------------------------------------------------------


def test_defaults_with_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings(
        home=Path(".llmops"),
        prompts_dir=Path("prompts"),
        database_url="sqlite:///.llmops/llmops.db",
        content="full",
        prices_file=None,
        remote_price_map=False,
        daily_budget_usd=None,
        monthly_budget_usd=None,
        dashboard_password=None,
    )
    assert not Path(".llmops").exists()  # reading settings creates nothing


def test_without_an_argument_it_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env() == Settings.from_env({})
    monkeypatch.setenv("LLMOPS_CONTENT", "none")
    monkeypatch.setenv("LLMOPS_DAILY_BUDGET", "3")
    settings = Settings.from_env()
    assert settings.content == "none" and settings.daily_budget_usd == 3.0


def test_every_variable(tmp_path: Path) -> None:
    env = {
        "LLMOPS_HOME": str(tmp_path / "state"),
        "LLMOPS_PROMPTS_DIR": str(tmp_path / "my-prompts"),
        "LLMOPS_DATABASE_URL": "postgresql+psycopg://u@db.example/llmops",
        "LLMOPS_CONTENT": "redact",
        "LLMOPS_PRICES": str(tmp_path / "p.yaml"),
        "LLMOPS_REMOTE_PRICE_MAP": "1",
        "LLMOPS_DAILY_BUDGET": "25",
        "LLMOPS_MONTHLY_BUDGET": "12.5",
        "LLMOPS_DASHBOARD_PASSWORD": "s3cret",
    }
    assert Settings.from_env(env) == Settings(
        home=tmp_path / "state",
        prompts_dir=tmp_path / "my-prompts",
        database_url="postgresql+psycopg://u@db.example/llmops",
        content="redact",
        prices_file=tmp_path / "p.yaml",  # not read here: whoever prices calls reads it
        remote_price_map=True,
        daily_budget_usd=25.0,
        monthly_budget_usd=12.5,
        dashboard_password="s3cret",  # noqa: S106 - a test value
    )


def test_empty_variables_count_as_unset() -> None:
    names = [
        "LLMOPS_HOME",
        "LLMOPS_PROMPTS_DIR",
        "LLMOPS_DATABASE_URL",
        "LLMOPS_CONTENT",
        "LLMOPS_PRICES",
        "LLMOPS_REMOTE_PRICE_MAP",
        "LLMOPS_DAILY_BUDGET",
        "LLMOPS_MONTHLY_BUDGET",
        "LLMOPS_DASHBOARD_PASSWORD",
        "LLMOPS_CONFIG",
    ]
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


def test_settings_are_immutable() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.content = "none"  # type: ignore[misc]


# -- LLMOPS_HOME and the default database ---------------------------------------------------


def test_the_default_database_is_a_sqlite_file_under_llmops_home(tmp_path: Path) -> None:
    home = tmp_path / "state" / "deeper"  # need not exist yet
    settings = Settings.from_env({"LLMOPS_HOME": str(home)})
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home}/llmops.db"
    assert settings.database_url == default_database_url(home)
    assert not home.exists()


def test_database_url_wins_over_llmops_home(tmp_path: Path) -> None:
    env = {"LLMOPS_HOME": str(tmp_path / "state"), "LLMOPS_DATABASE_URL": "sqlite:///x.db"}
    assert Settings.from_env(env).database_url == "sqlite:///x.db"


def test_default_database_url_is_posix() -> None:
    assert default_database_url(Path("a") / "b") == "sqlite:///a/b/llmops.db"
    assert default_database_url(Path("/abs")) == "sqlite:////abs/llmops.db"


def test_llmops_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "state"
    file.write_text("not a folder")
    with pytest.raises(ConfigFileError, match="not a directory") as named:
        Settings.from_env({"LLMOPS_HOME": str(file)})
    assert named.value.file == str(file) and "LLMOPS_HOME folder" in str(named.value)
    assert named.value.exit_code == 2
    Path(".llmops").write_text("a file where the default state folder goes")
    with pytest.raises(ConfigFileError, match=r"llmops state folder \(LLMOPS_HOME\)"):
        Settings.from_env({})


def test_llmops_home_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigFileError, match="is not a directory"):
        Settings.from_env({"LLMOPS_HOME": str(tmp_path / "file" / "state")})


# -- LLMOPS_CONTENT -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", CONTENT_MODES)
def test_content_modes(mode: str) -> None:
    assert Settings.from_env({"LLMOPS_CONTENT": mode}).content == mode
    assert Settings.from_env({"LLMOPS_CONTENT": f"  {mode.upper()} "}).content == mode


@pytest.mark.parametrize("value", ["redacted", "all", "0", "full,redact"])
def test_bad_content_mode_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"LLMOPS_CONTENT=.*expected one of full, redact, none"):
        Settings.from_env({"LLMOPS_CONTENT": value})


# -- prices, remote price map, password -----------------------------------------------------


def test_prices_file_defaults_to_prices_yaml_when_it_exists(workdir: Path) -> None:
    assert Settings.from_env({}).prices_file is None
    Path("prices.yaml").mkdir()  # a folder is not a prices file
    assert Settings.from_env({}).prices_file is None
    Path("prices.yaml").rmdir()
    Path("prices.yaml").write_text("models: {}\n")
    assert Settings.from_env({}).prices_file == Path("prices.yaml")
    other = {"LLMOPS_PRICES": str(workdir / "other.yaml")}
    assert Settings.from_env(other).prices_file == workdir / "other.yaml"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("On", True), ("0", False), ("no", False),
     ("false", False), ("2", False)],
)  # fmt: skip
def test_remote_price_map(value: str, expected: bool) -> None:
    assert Settings.from_env({"LLMOPS_REMOTE_PRICE_MAP": value}).remote_price_map is expected


def test_dashboard_password_is_kept_verbatim() -> None:
    password = " pass word with spaces "
    settings = Settings.from_env({"LLMOPS_DASHBOARD_PASSWORD": password})
    assert settings.dashboard_password == password


# -- budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("25", 25.0), ("12.5", 12.5), (" 7 ", 7.0), ("1e3", 1000.0)]
)
def test_budgets_from_the_environment(value: str, expected: float) -> None:
    env = {"LLMOPS_DAILY_BUDGET": value, "LLMOPS_MONTHLY_BUDGET": value}
    settings = Settings.from_env(env)
    assert settings.daily_budget_usd == settings.monthly_budget_usd == expected


@pytest.mark.parametrize("name", ["LLMOPS_DAILY_BUDGET", "LLMOPS_MONTHLY_BUDGET"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "expected an amount in USD"),
        ("$25", "expected an amount in USD"),
        ("0", "finite amount more than 0"),
        ("-5", "finite amount more than 0"),
        ("nan", "finite amount more than 0"),
        ("inf", "finite amount more than 0"),
        ("1e400", "finite amount more than 0"),
    ],
)
def test_bad_budgets_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        Settings.from_env({name: value})
    assert str(failure.value).startswith(f"{name}={value!r}: ")
    assert failure.value.exit_code == 2


def test_budgets_from_llmops_yaml() -> None:
    Path("llmops.yaml").write_text("budgets:\n  daily_usd: 5\n  monthly_usd: 120.5\n")
    settings = Settings.from_env({})
    assert (settings.daily_budget_usd, settings.monthly_budget_usd) == (5.0, 120.5)


def test_the_environment_wins_over_llmops_yaml() -> None:
    Path("llmops.yaml").write_text("budgets:\n  daily_usd: 5\n  monthly_usd: 120\n")
    settings = Settings.from_env({"LLMOPS_DAILY_BUDGET": "9"})
    assert (settings.daily_budget_usd, settings.monthly_budget_usd) == (9.0, 120.0)
    settings = Settings.from_env({"LLMOPS_DAILY_BUDGET": "", "LLMOPS_MONTHLY_BUDGET": "1"})
    assert (settings.daily_budget_usd, settings.monthly_budget_usd) == (5.0, 1.0)


def test_a_bad_budget_in_the_environment_fails_even_with_a_good_file() -> None:
    Path("llmops.yaml").write_text("budgets:\n  daily_usd: 5\n")
    with pytest.raises(ConfigError, match="LLMOPS_DAILY_BUDGET"):
        Settings.from_env({"LLMOPS_DAILY_BUDGET": "-1"})


# -- the config file ------------------------------------------------------------------------


def test_no_config_file_is_fine() -> None:
    assert read_config_file({}) == ConfigFile()


@pytest.mark.parametrize("text", ["", "# nothing set\n", "budgets: {}\n", "budgets:\n"])
def test_an_empty_config_file_sets_nothing(text: str) -> None:
    without = Settings.from_env({})
    Path("llmops.yaml").write_text(text)
    assert Settings.from_env({}) == Settings.from_env({"LLMOPS_CONFIG": ""}) == without


def test_llmops_config_names_another_file(tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf" / "team.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("budgets:\n  monthly_usd: 300\n")
    Path("llmops.yaml").write_text("budgets:\n  monthly_usd: 1\n")  # not read: the env wins
    settings = Settings.from_env({"LLMOPS_CONFIG": str(elsewhere)})
    assert settings.monthly_budget_usd == 300.0


def test_llmops_config_pointing_at_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigFileError) as failure:
        Settings.from_env({"LLMOPS_CONFIG": str(missing)})
    assert failure.value.file == str(missing) and failure.value.line is None
    assert str(failure.value) == (
        f"{missing}: cannot read the config file (LLMOPS_CONFIG): no such file"
    )


def test_llmops_config_pointing_at_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="it is a directory"):
        Settings.from_env({"LLMOPS_CONFIG": str(tmp_path)})


def test_a_dangling_llmops_yaml_symlink_is_an_error() -> None:
    Path("llmops.yaml").symlink_to("gone.yaml")
    with pytest.raises(ConfigFileError, match=r"llmops\.yaml: cannot read the config file"):
        Settings.from_env({})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("budgets:\n  daily_usd: [unclosed\n", 3, "invalid YAML"),
        ("budgets:\n\tdaily_usd: 5\n", 2, "invalid YAML"),
        ("budget:\n  daily_usd: 5\n", 1, "budget: Extra inputs are not permitted"),
        ("budgets:\n  weekly_usd: 5\n", 2, "budgets.weekly_usd: Extra inputs are not permitted"),
        ("budgets:\n  daily_usd: 0\n", 2, "budgets.daily_usd: Input should be greater than 0"),
        ("budgets:\n  monthly_usd: -3\n", 2, "budgets.monthly_usd: Input should be greater"),
        ("budgets:\n  daily_usd: .inf\n", 2, "budgets.daily_usd: Input should be a finite"),
        ("budgets:\n  daily_usd: .nan\n", 2, "budgets.daily_usd"),
        ("budgets:\n  daily_usd: lots\n", 2, "budgets.daily_usd: Input should be a valid number"),
        ("budgets: 5\n", 1, "budgets: Input should be a valid dictionary"),
        ("- budgets\n", 1, "expected a mapping of settings, got a list"),
        ("just text\n", 1, "expected a mapping of settings, got a str"),
        ("budgets:\n  daily_usd: 1\nbudgets:\n  daily_usd: 2\n", 3, "duplicate key 'budgets'"),
        ("a: &a [*a]\n", 1, "recursive alias"),
        ("x: " + "[" * 100 + "]" * 100 + "\n", 1, "nested more than 64 levels deep"),
        (BILLION_LAUGHS, 6, "billion laughs"),  # line 6 (9**6 nodes) crosses the limit
    ],
    ids=[
        "unclosed", "tab", "unknown-section", "unknown-key", "zero", "negative", "infinite",
        "nan", "word", "not-a-mapping", "a-list", "a-string", "duplicate", "recursive", "deep",
        "billion-laughs",
    ],
)  # fmt: skip
def test_a_malformed_config_file_names_the_file_and_line(
    text: str, line: int, message: str
) -> None:
    Path("llmops.yaml").write_text(text)
    with pytest.raises(ConfigFileError) as failure:
        Settings.from_env({})
    error = failure.value
    assert (error.file, error.line) == ("llmops.yaml", line), str(error)
    assert str(error).startswith(f"llmops.yaml:{line}: "), str(error)
    assert message in str(error)
    assert error.exit_code == 2


def test_a_binary_config_file_is_not_text(tmp_path: Path) -> None:
    binary = tmp_path / "cfg.yaml"
    binary.write_bytes(b"budgets:\n  daily_usd: 5\n\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigFileError) as failure:
        Settings.from_env({"LLMOPS_CONFIG": str(binary)})
    assert (failure.value.file, failure.value.line) == (str(binary), 3)
    assert "not a text file" in str(failure.value) and "config file (LLMOPS_CONFIG)" in str(
        failure.value
    )
    Path("llmops.yaml").write_bytes("budgets: {daily_usd: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ConfigFileError, match=r"^llmops.yaml:1: not a text file"):
        Settings.from_env({})


def test_a_huge_config_file_is_refused_unread() -> None:
    with open("llmops.yaml", "wb") as handle:
        handle.truncate(MAX_YAML_BYTES + 1)  # sparse: quick to make, refused by its size
    with pytest.raises(ConfigFileError, match="larger than 2 MB, the limit for a config file"):
        Settings.from_env({})


def test_a_byte_order_mark_is_fine() -> None:
    Path("llmops.yaml").write_bytes(b"\xef\xbb\xbfbudgets:\n  daily_usd: 4\n")
    assert Settings.from_env({}).daily_budget_usd == 4.0


def test_a_config_error_comes_after_a_content_error() -> None:
    """The variables are checked first: a bad LLMOPS_CONTENT is reported, not the file."""
    Path("llmops.yaml").write_text("nonsense: 1\n")
    with pytest.raises(ConfigError, match="LLMOPS_CONTENT"):
        Settings.from_env({"LLMOPS_CONTENT": "bogus"})


# -- budgets.limits -------------------------------------------------------------------------

LIMITS = """\
budgets:
  daily_usd: 5
  limits:
    - name: all-daily
      window: day
      limit_usd: 200
    - name: per-user
      window: month
      limit_usd: 20
      scope: {user: each}
      thresholds: [100, 50]
"""


def test_named_budgets_are_read_in_order() -> None:
    Path("llmops.yaml").write_text(LIMITS)
    settings = Settings.from_env({})
    assert settings.daily_budget_usd == 5
    first, second = settings.budgets
    assert (first.name, first.window, first.limit_usd, first.action) == (
        "all-daily",
        "day",
        200,
        "alert",
    )
    assert first.scope == {} and first.thresholds == (50, 80, 100)
    assert first.describe_scope() == "all calls"
    assert (second.scope_key, second.scope_value, second.thresholds) == ("user", "each", (50, 100))
    assert second.describe_scope() == "each user"


@pytest.mark.parametrize(
    ("entry", "line", "message"),
    [
        ("    - {name: a, window: year, limit_usd: 1}\n", 3, "window: Input should be 'day'"),
        ("    - {name: a, window: day, limit_usd: 0}\n", 3, "limit_usd: Input should be greater"),
        ("    - {name: a, window: day, limit_usd: .inf}\n", 3, "limit_usd"),
        ("    - {name: a, window: day}\n", 3, "limit_usd: Field required"),
        ("    - {name: 'a b', window: day, limit_usd: 1}\n", 3, "name: String should match"),
        ("    - {name: a, window: day, limit_usd: 1, scope: {team: x}}\n", 3, "scope.team"),
        ("    - {name: a, window: day, limit_usd: 1, scope: {user: a, tag: b}}\n", 3, "one key"),
        ("    - {name: a, window: day, limit_usd: 1, thresholds: [0]}\n", 3, "above 0"),
        ("    - {name: a, window: day, limit_usd: 1, thresholds: []}\n", 3, "at least one"),
        ("    - {name: a, window: day, limit_usd: 1, action: stop}\n", 3, "action: Input"),
        ("    - {name: a, window: day, limit_usd: 1, unreachable: x}\n", 3, "unreachable: Input"),
        ("    - {name: a, window: day, limit_usd: 1}\n" * 2, 2, "two budgets are named 'a'"),
        ("    - {name: a, window: day, limit_usd: true}\n", 3, "limit_usd: Input should be a"),
        ("    - {name: a, window: day, limit_usd: '25'}\n", 3, "limit_usd: Input should be a"),
        ("    - {name: key-web, window: day, limit_usd: 1}\n", 2, "virtual keys' own monthly"),
    ],
)  # fmt: skip
def test_a_bad_budget_names_the_file_and_line(entry: str, line: int, message: str) -> None:
    Path("llmops.yaml").write_text("budgets:\n  limits:\n" + entry)
    with pytest.raises(ConfigFileError) as failure:
        Settings.from_env({})
    assert (failure.value.file, failure.value.line) == ("llmops.yaml", line), str(failure.value)
    assert message in str(failure.value)


# -- retention ------------------------------------------------------------------------------


def test_retention_defaults_keep_everything_six_months_at_least() -> None:
    retention = Settings.from_env({}).retention
    assert (retention.content_days, retention.calls_days, retention.minimum_days) == (
        None, None, 183,
    )  # fmt: skip
    Path("llmops.yaml").write_text("retention:\n  content_days: 30\n  calls_days: 400\n")
    retention = Settings.from_env({}).retention
    assert (retention.content_days, retention.calls_days) == (30, 400)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("retention:\n  calls_days: 30\n", "under minimum_days 183"),
        ("retention:\n  calls_days: 100\n  minimum_days: 150\n", "under minimum_days 150"),
        ("retention:\n  content_days: 0\n", "content_days"),
        ("retention:\n  keep: forever\n", "keep"),
        ("retention:\n  calls_days: ten\n", "calls_days"),
    ],
)
def test_bad_retention_names_the_file_and_line(text: str, message: str) -> None:
    Path("llmops.yaml").write_text(text)
    with pytest.raises(ConfigFileError, match=message):
        Settings.from_env({})


def test_a_number_too_long_to_read_is_one_error_line() -> None:
    Path("llmops.yaml").write_text(
        "budgets: {limits: [{name: a, window: day, limit_usd: " + "9" * 5000 + "}]}\n"
    )
    with pytest.raises(ConfigFileError, match="invalid YAML: a number over 4300 digits"):
        Settings.from_env({})


@pytest.mark.parametrize("text", ["000000000060000000000s", "9999999999999999999999m", "15m"])
def test_durations_are_read_whole_never_cut(text: str) -> None:
    from datetime import timedelta

    from llmops.config import parse_duration

    if text == "15m":
        assert parse_duration(text, timedelta(seconds=5), timedelta(days=1)).seconds == 900
        return
    with pytest.raises(ValueError, match="duration"):  # the first 12 digits were: 1 minute
        parse_duration(text, timedelta(seconds=5), timedelta(days=1))
