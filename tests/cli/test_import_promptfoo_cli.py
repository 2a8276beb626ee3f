"""``llmops eval import promptfoo`` on the command line: options, overwriting, and bad input
(one ``error:`` line, exit 2, nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIG = """\
description: Greeter
prompts: ["Say hello to {{ name }}"]
providers: [openai:gpt-4o-mini]
tests:
  - vars: {name: Ada}
    assert: [{type: icontains, value: ada}]
"""

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def test_writes_suite_and_prompt_then_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "promptfooconfig.yaml").write_text(CONFIG)
    first = cli("eval", "import", "promptfoo", "promptfooconfig.yaml", cwd=root)
    assert first.code == 0, first.stderr
    assert first.stdout.splitlines() == [
        "wrote evals/greeter.yaml",
        "wrote prompts/greeter.yaml",
        "Imported 1 case, 1 assertion, 1 prompt, 1 model; 0 items not imported.",
        "Next: llmops eval run evals/greeter.yaml --dry-run",
    ]
    assert first.stderr == ""
    suite = (root / "evals/greeter.yaml").read_text()
    assert suite.splitlines()[0] == (
        "# Imported from promptfoo config promptfooconfig.yaml by `llmops eval import promptfoo`."
    )
    assert "prompt: greeter\n" in suite
    again = cli("eval", "import", "promptfoo", "promptfooconfig.yaml", cwd=root)
    assert again.code == 2
    assert again.stderr.strip() == "error: evals/greeter.yaml: exists: pass --force to overwrite it"
    (root / "evals/greeter.yaml").write_text("edited")
    forced = cli("eval", "import", "promptfoo", "promptfooconfig.yaml", "--force", cwd=root)
    assert forced.code == 0 and (root / "evals/greeter.yaml").read_text() == suite
    run = cli("eval", "run", "--dry-run", cwd=root, env={"LLMOPS_HOME": str(root / ".h")})
    assert run.code == 0, run.stderr
    assert "greeter: candidate working on gpt-4o-mini" in run.stdout


def test_out_prompts_dir_and_dry_run(cli, tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "pf.yaml").write_text(CONFIG)
    args = ("eval", "import", "promptfoo", "pf.yaml", "--out", "checks/hello.yaml")
    dry = cli(*args, "--prompts-dir", "templates", "--dry-run", cwd=root)
    assert dry.code == 0, dry.stderr
    assert "--- checks/hello.yaml (not written)" in dry.stdout
    assert "--- templates/hello.yaml (not written)" in dry.stdout
    assert "prompt: hello" in dry.stdout and "template: Say hello to {{ name }}" in dry.stdout
    assert sorted(p.name for p in root.iterdir()) == ["pf.yaml"]
    done = cli(*args, "--prompts-dir", "templates", cwd=root)
    assert done.code == 0, done.stderr
    assert (root / "checks/hello.yaml").is_file() and (root / "templates/hello.yaml").is_file()
    env = {"LLMOPS_HOME": str(root / ".h"), "LLMOPS_PROMPTS_DIR": "templates"}
    run = cli("eval", "run", "checks", "--dry-run", cwd=root, env=env)
    assert run.code == 0, run.stderr
    # the command the import suggests (and the suite's header) runs as printed
    (next_line,) = [line for line in done.stdout.splitlines() if line.startswith("Next: ")]
    assert next_line == "Next: llmops eval run checks/hello.yaml --prompts-dir templates --dry-run"
    header = (root / "checks/hello.yaml").read_text().splitlines()[1]
    assert header == (
        "# Check it: llmops eval run checks/hello.yaml --prompts-dir templates --dry-run"
    )
    suggested = cli(*next_line.removeprefix("Next: llmops ").split(), cwd=root,
                    env={"LLMOPS_HOME": str(root / ".h")})  # fmt: skip
    assert suggested.code == 0, suggested.stderr


BAD = {
    "missing": (None, "pf.yaml: cannot read the promptfoo config: no such file"),
    "not-yaml": ("prompts: [unclosed\n  tests: {\n", "pf.yaml:2: invalid YAML"),
    "bomb": (BOMB, "(a 'billion laughs' YAML bomb?)"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a text file"),
    "list": ("- a\n- b\n", "expected a promptfoo config"),
    "no-prompts": ("providers: [openai:gpt-4o-mini]\ntests: [{vars: {a: 1}}]\n", "no prompts"),
    "empty-prompts": ("prompts: []\nproviders: [openai:gpt-4o-mini]\n", "no prompts"),
    "missing-prompt-file": (
        "prompts: [file://nope.txt]\nproviders: [openai:gpt-4o-mini]\n",
        "nope.txt: cannot read the prompt file: no such file",
    ),
    "missing-tests-file": (
        "prompts: [hi]\nproviders: [openai:gpt-4o-mini]\ntests: file://cases.csv\n",
        "cases.csv: cannot read the tests file: no such file",
    ),
    "tests-glob-empty": (
        "prompts: [hi]\ntests: [file://cases/*.yaml]\n",
        "tests[0]: no tests files match cases/*.yaml",
    ),
    "tests-txt": (
        "prompts: [hi]\ntests: [file://cases.txt]\n",
        "tests files are .csv, .json, .jsonl or .yaml",
    ),
    "missing-var-file": (
        "prompts: ['{{ doc }}']\ntests: [{vars: {doc: file://doc.txt}}]\n",
        "doc.txt: cannot read the vars file: no such file",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_error_line_and_exit_2(cli, tmp_path: Path, case: str) -> None:
    root = project(tmp_path)
    content, message = BAD[case]
    if isinstance(content, bytes):
        (root / "pf.yaml").write_bytes(content)
    elif content is not None:
        (root / "pf.yaml").write_text(content)
    if case == "tests-txt":
        (root / "cases.txt").write_text("x\n")
    result = cli("eval", "import", "promptfoo", "pf.yaml", cwd=root)
    assert result.code == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (root / "evals").exists() and not (root / "prompts").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("promptfooconfig.js", "a JavaScript config cannot be imported"),
        ("folder", "cannot read the promptfoo config: it is a directory"),
    ],
)
def test_configs_that_are_not_yaml_files(cli, tmp_path: Path, name: str, message: str) -> None:
    root = project(tmp_path)
    if name == "folder":
        (root / name).mkdir()
    else:
        (root / name).write_text("module.exports = {prompts: ['hi']};\n")
    result = cli("eval", "import", "promptfoo", name, cwd=root)
    assert result.code == 2 and result.stderr.startswith("error: ")
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_prompt_folder_that_is_a_file_is_refused_before_writing(cli, tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "pf.yaml").write_text(CONFIG)
    (root / "prompts").write_text("not a folder")
    result = cli("eval", "import", "promptfoo", "pf.yaml", cwd=root)
    assert result.code == 2 and result.stderr.startswith("error: prompts")
    assert not (root / "evals").exists()
