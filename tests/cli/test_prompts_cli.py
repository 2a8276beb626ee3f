"""``llmops prompts ...`` (the in-process ``cli``): output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PromptRepo, prompt_yaml


@pytest.fixture
def project(repo: PromptRepo) -> PromptRepo:
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.write(
        "support/answer.yaml", "description: Answers\nmodel: gpt-4o\ntemplate: 'Q: {{ q }}'\n"
    )
    repo.commit("Add prompts")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    repo.commit("Howdy")
    return repo


def test_list(project: PromptRepo, cli) -> None:
    result = cli("prompts", "list", cwd=project.root)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "MODEL", "LABELS", "DESCRIPTION"]
    assert lines[1].split()[0] == "greet" and lines[2].split()[:3] == [
        "support/answer",
        project.registry.load("support/answer").version,
        "gpt-4o",
    ]
    as_json = json.loads(cli("prompts", "list", "--json", cwd=project.root).stdout)
    assert [row["name"] for row in as_json] == ["greet", "support/answer"]


def test_list_with_dir_option_and_env(project: PromptRepo, cli, tmp_path) -> None:
    by_option = cli("prompts", "list", "--dir", str(project.prompts), cwd=tmp_path)
    by_env = cli("prompts", "list", cwd=tmp_path, env={"LLMOPS_PROMPTS_DIR": str(project.prompts)})
    assert by_option.code == by_env.code == 0
    assert by_option.stdout == by_env.stdout and "support/answer" in by_env.stdout


def test_show(project: PromptRepo, cli) -> None:
    result = cli("prompts", "show", "greet", cwd=project.root)
    assert result.code == 0, result.stderr
    assert "version:" in result.stdout and project.git("rev-parse", "HEAD") in result.stdout
    assert "variables: name" in result.stdout
    assert "Howdy, {{ name }}!" in result.stdout
    data = json.loads(cli("prompts", "show", "greet@HEAD~1", "--json", cwd=project.root).stdout)
    assert data["messages"] == [{"role": "user", "content": "Hello, {{ name }}!"}]
    assert data["params"] == {"temperature": 0.1}


def test_show_and_diff_escape_what_could_drive_the_terminal(repo: PromptRepo, cli) -> None:
    """A prompt's fields can hold escapes (YAML's "\\x1b") and its text a right-to-left
    override: show and diff print them escaped, as the CLI's tables do, so a prompt file
    cannot clear the screen, set the window title or turn a line around."""
    repo.write("p.yaml", "model: m\ntemplate: hi\n")
    repo.commit("v1")
    repo.write(
        "p.yaml",
        'description: "evil \\x1b[2J"\nmodel: "m\\x1b[31m"\n'
        'template: "hi \\x1b]0;title\\x07 {{ x }}\\nline two"\n# \u202eevil\n',
    )
    shown = cli("prompts", "show", "p", cwd=repo.root)
    assert shown.code == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "model:     m\\x1b[31m" in shown.stdout
    assert "evil \\x1b[2J" in shown.stdout
    assert "hi \\x1b]0;title\\x07 {{ x }}\nline two" in shown.stdout  # lines are kept
    diff = cli("prompts", "diff", "p", "HEAD", cwd=repo.root)
    assert diff.code == 0, diff.stderr
    assert "\u202e" not in diff.stdout and "+# \\u202eevil" in diff.stdout
    (repo.prompts / "p.yaml").write_bytes(b"model: m\r\ntemplate: hello\r\n")
    crlf = cli("prompts", "diff", "p", "HEAD", cwd=repo.root)
    assert "+template: hello\n" in crlf.stdout and "\\x0d" not in crlf.stdout


def test_render_with_vars_and_vars_file(project: PromptRepo, cli, tmp_path) -> None:
    result = cli("prompts", "render", "greet", "--var", "name=Ann", cwd=project.root)
    assert result.code == 0, result.stderr
    assert result.stdout == "[user]\nHowdy, Ann!\n"
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"q": "Why?"}))
    result = cli(
        "prompts",
        "render",
        "support/answer",
        "--vars-file",
        str(vars_file),
        "--json",
        cwd=project.root,
    )
    assert json.loads(result.stdout) == [{"role": "user", "content": "Q: Why?"}]


def test_render_var_types_follow_the_schema(repo: PromptRepo, cli) -> None:
    repo.write(
        "n.yaml",
        "input_schema:\n  type: object\n  properties:\n    n: {type: integer}\n"
        "    zip: {type: string}\ntemplate: '{{ n + 1 }} {{ zip }}'\n",
    )
    result = cli("prompts", "render", "n", "-v", "n=41", "-v", "zip=01234", cwd=repo.root)
    assert result.stdout == "[user]\n42 01234\n", result.stderr
    bad = cli("prompts", "render", "n", "-v", "n=many", cwd=repo.root)
    assert bad.code == 2 and "variable 'n' fails input_schema" in bad.stderr


def test_render_refuses_a_number_python_will_not_read(repo: PromptRepo, cli) -> None:
    """Python reads at most 4,300 digits of an integer: a longer one in --var (typed by the
    schema) or in --vars-file is one error line, exit 2, not an internal error."""
    repo.write(
        "n.yaml",
        "input_schema:\n  type: object\n  properties:\n    n: {type: integer}\n"
        "template: '{{ n }}'\n",
    )
    digits = "1" * 5000
    by_var = cli("prompts", "render", "n", "-v", f"n={digits}", cwd=repo.root)
    assert by_var.code == 2 and "variable 'n' fails input_schema" in by_var.stderr
    (repo.root / "vars.json").write_text(f'{{"n": {digits}}}')
    by_file = cli("prompts", "render", "n", "--vars-file", "vars.json", cwd=repo.root)
    assert by_file.code == 2, by_file.stderr
    assert by_file.stderr.startswith("error: vars.json: invalid JSON: a number over 4300 digits")


def test_log_lists_versions_newest_first(project: PromptRepo, cli) -> None:
    result = cli("prompts", "log", "greet", cwd=project.root)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "COMMIT"]
    assert "Howdy" in lines[1] and "Add prompts" in lines[2]
    assert "Ada Tester" in lines[1]
    rows = json.loads(cli("prompts", "log", "greet", "--json", cwd=project.root).stdout)
    assert [r["subject"] for r in rows] == ["Howdy", "Add prompts"]
    assert rows[0]["commit"] == project.git("rev-parse", "HEAD")


def test_log_marks_uncommitted_changes(project: PromptRepo, cli) -> None:
    project.write("greet.yaml", prompt_yaml("Hiya"))
    result = cli("prompts", "log", "greet", cwd=project.root)
    assert "uncommitted changes" in result.stdout.splitlines()[0]


def test_diff(project: PromptRepo, cli) -> None:
    result = cli("prompts", "diff", "greet", "HEAD~1", "HEAD", cwd=project.root)
    assert result.code == 0, result.stderr
    assert '-    content: "Hello, {{ name }}!"' in result.stdout
    assert '+    content: "Howdy, {{ name }}!"' in result.stdout
    same = cli("prompts", "diff", "greet", "HEAD", cwd=project.root)
    assert "identical" in same.stdout


def test_promote_then_load_by_label(project: PromptRepo, cli) -> None:
    old = project.registry.load("greet@HEAD~1").version
    result = cli("prompts", "promote", "greet", old, "--label", "production", cwd=project.root)
    assert result.code == 0, result.stderr
    assert f"greet: production -> {old}" in result.stdout
    shown = cli("prompts", "render", "greet@production", "--var", "name=Z", cwd=project.root)
    assert shown.stdout == "[user]\nHello, Z!\n"
    refused = cli(
        "prompts", "promote", "greet", "ffffffffffff", "-l", "production", cwd=project.root
    )
    assert refused.code == 2 and "no label, version or commit 'ffffffffffff'" in refused.stderr
    listed = cli("prompts", "list", cwd=project.root).stdout
    # the working tree is a newer version: production is shown on the version it points at
    assert listed.splitlines()[1].split()[3] == f"production@{old}"
    as_json = json.loads(cli("prompts", "list", "--json", cwd=project.root).stdout)
    assert as_json[0]["labels"] == [] and as_json[0]["label_versions"] == {"production": old}
    cli("prompts", "promote", "greet", "HEAD", "--label", "production", cwd=project.root)
    listed = cli("prompts", "list", cwd=project.root).stdout
    assert listed.splitlines()[1].split()[3] == "production"  # on the listed version


def test_validate(project: PromptRepo, cli) -> None:
    ok = cli("prompts", "validate", cwd=project.root)
    assert ok.code == 0 and "2 prompt(s) OK" in ok.stdout
    project.write("broken.yaml", "template: [unclosed\n")
    bad = cli("prompts", "validate", cwd=project.root)
    assert bad.code == 2
    assert "broken.yaml:2: invalid YAML" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("prompts", "show", "broken"), "broken.yaml:3: unknown field 'modle'"),
        (("prompts", "render", "greet"), "missing required variable 'name'"),
        (("prompts", "render", "greet@nope"), "no label, version or commit 'nope'"),
        (("prompts", "show", "gret"), "did you mean 'greet'"),
        (("prompts", "render", "greet", "--var", "novalue"), "expected NAME=VALUE"),
        (("prompts", "render", "greet", "--vars-file", "missing.json"), "cannot read"),
        (("prompts", "log", "greet@HEAD"), "without '@'"),
        (("prompts", "promote", "greet", "HEAD", "-l", "9x"), "must start with a letter"),
    ],
)
def test_errors_are_one_clear_line_with_exit_code_2(
    project: PromptRepo, cli, args: tuple[str, ...], message: str
) -> None:
    project.write("broken.yaml", "template: hi\nmodel: m\nmodle: m\n")
    result = cli(*args, cwd=project.root)
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("show", "greet"),
        ("render", "greet", "--var", "name=Ann"),
        ("log", "greet"),
        ("diff", "greet", "HEAD"),
        ("promote", "greet", "HEAD", "--label", "production"),
        ("validate",),
    ],
)
def test_every_command_refuses_a_prompt_folder_that_is_not_there(
    project: PromptRepo, cli, args: tuple[str, ...]
) -> None:
    """A mistyped ``--dir`` (or ``$LLMOPS_PROMPTS_DIR``) is one line and exit 2, as for
    ``validate``, not an empty list; nothing is made there."""
    missing = project.root / "promtps"
    for how in (
        {"argv": ("--dir", str(missing)), "env": {}},
        {"argv": (), "env": {"LLMOPS_PROMPTS_DIR": str(missing)}},
    ):
        result = cli("prompts", *args, *how["argv"], cwd=project.root, env=how["env"])
        assert result.code == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr == f"error: {missing}: no such prompt folder\n"
        assert not missing.exists()
    a_file = cli("prompts", *args, "--dir", str(project.prompts / "greet.yaml"), cwd=project.root)
    assert a_file.code == 2 and a_file.stderr.startswith("error: ")
    assert "not a directory" in a_file.stderr and len(a_file.stderr.splitlines()) == 1


def test_history_without_a_repository_says_it_needs_git(tmp_path, cli) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "greet.yaml").write_text(prompt_yaml())
    result = cli("prompts", "log", "greet", cwd=tmp_path)
    assert result.code == 2 and "history needs git" in result.stderr
    assert cli("prompts", "list", cwd=tmp_path).code == 0


def test_usage_errors_exit_2(project: PromptRepo, cli) -> None:
    assert cli("prompts", "nonsense", cwd=project.root).code == 2
    assert cli("prompts", "promote", "greet", "HEAD", cwd=project.root).code == 2  # no --label
    assert cli("--version", cwd=project.root).stdout.startswith("llmops ")


@pytest.mark.integration  # a fresh process per command: what start-up imports
def test_commands_that_call_no_model_do_not_import_litellm(project: PromptRepo, cli) -> None:
    for args in (("--help",), ("prompts", "list"), ("prompts", "render", "greet", "-v", "name=a")):
        code = (
            "import sys\n"
            "from llmops.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "heavy = ('litellm', 'streamlit', 'pandas', 'sqlalchemy')\n"
            "heavy = [m for m in heavy if m in sys.modules]\n"
            "print('HEAVY', heavy)\n"
            "sys.exit(rc)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=project.root, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "HEAVY []" in result.stdout
