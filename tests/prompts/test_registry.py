"""Versions from git history: edits, renames, labels, old versions, and life without git."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import llmops
from llmops.errors import (
    HistoryUnavailableError,
    PromptFileError,
    PromptNotFoundError,
    PromptReferenceError,
)
from llmops.prompts import Labels, PromptRegistry
from tests.conftest import PromptRepo, prompt_yaml


@pytest.fixture
def history(repo: PromptRepo) -> dict[str, str]:
    """greet: v1 -> v2 -> comment-only edit -> renamed to chat/greet -> v3; returns the shas."""
    shas = {}
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.write("other.yaml", "template: unrelated\n")
    shas["v1"] = repo.commit("Add greet")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    shas["v2"] = repo.commit("Friendlier greeting")
    repo.write("greet.yaml", "# reviewed by legal\n" + prompt_yaml("Howdy"))
    shas["comment"] = repo.commit("Add a comment")
    (repo.prompts / "chat").mkdir()
    repo.git("mv", "prompts/greet.yaml", "prompts/chat/greet.yaml")
    shas["rename"] = repo.commit("Move greet under chat/")
    repo.write("chat/greet.yaml", prompt_yaml("Good day"))
    shas["v3"] = repo.commit("Formal greeting")
    return shas


def versions_of(repo: PromptRepo, greeting: str) -> str:
    scratch = PromptRegistry(repo.root / "scratch")
    (repo.root / "scratch").mkdir(exist_ok=True)
    (repo.root / "scratch" / "x.yaml").write_text(prompt_yaml(greeting))
    return scratch.load("x").version


def test_history_is_newest_first_and_follows_the_rename(
    repo: PromptRepo, history: dict[str, str]
) -> None:
    rows = repo.registry.history("chat/greet")
    assert [r.commit for r in rows] == [
        history["v3"],
        history["rename"],
        history["comment"],
        history["v2"],
        history["v1"],
    ]
    assert rows[0].subject == "Formal greeting"
    assert rows[0].path == "prompts/chat/greet.yaml"
    assert rows[-1].path == "prompts/greet.yaml"
    assert rows[0].author == "Ada Tester" and rows[0].date.tzinfo is not None
    assert rows[0].date > rows[-1].date
    v1, v2, v3 = (versions_of(repo, g) for g in ("Hello", "Howdy", "Good day"))
    assert [r.version for r in rows] == [v3, v2, v2, v2, v1]
    assert [r.changed for r in rows] == [True, False, False, True, True]


def test_working_tree_prompt_carries_the_commit_that_wrote_it(
    repo: PromptRepo, history: dict[str, str]
) -> None:
    prompt = repo.registry.load("chat/greet")
    assert prompt.commit == history["v3"]
    assert prompt.render(name="Ann")[0]["content"] == "Good day, Ann!"
    repo.write("chat/greet.yaml", prompt_yaml("Yo"))
    dirty = PromptRegistry(repo.prompts).load("chat/greet")
    assert dirty.commit is None
    assert dirty.version != prompt.version


def test_load_old_version_by_id_across_the_rename(
    repo: PromptRepo, history: dict[str, str]
) -> None:
    v1 = versions_of(repo, "Hello")
    prompt = repo.registry.load(f"chat/greet@{v1}")
    assert prompt.version == v1
    assert prompt.commit == history["v1"]
    assert prompt.render(name="Bo") == [{"role": "user", "content": "Hello, Bo!"}]
    assert prompt.file == f"prompts/greet.yaml@{history['v1'][:12]}"
    assert prompt.model == "gpt-4o-mini" and prompt.params == {"temperature": 0.1}


def test_version_loaded_by_id_reports_the_newest_commit_with_that_content(
    repo: PromptRepo, history: dict[str, str]
) -> None:
    v2 = versions_of(repo, "Howdy")
    assert repo.registry.load(f"chat/greet@{v2}").commit == history["rename"]


def test_load_by_commit_ish(repo: PromptRepo, history: dict[str, str]) -> None:
    registry = repo.registry
    assert (
        registry.load(f"chat/greet@{history['v2'][:8]}").render(name="x")[0]["content"]
        == "Howdy, x!"
    )
    assert registry.load(f"chat/greet@{history['v1']}").commit == history["v1"]
    at_comment = registry.load(f"chat/greet@{history['comment']}")
    assert at_comment.commit == history["comment"]
    assert at_comment.source.startswith("# reviewed by legal")
    assert registry.load("chat/greet@HEAD~1").version == versions_of(repo, "Howdy")
    repo.git("tag", "release-1", history["v1"])
    assert registry.load("chat/greet@release-1").version == versions_of(repo, "Hello")


def test_commit_before_the_prompt_existed(repo: PromptRepo, history: dict[str, str]) -> None:
    repo.write("late.yaml", "template: late\n")
    repo.commit("Add late")
    with pytest.raises(PromptReferenceError, match="did not exist at commit"):
        repo.registry.load(f"late@{history['v1']}")


def test_unknown_reference_is_a_clear_error(repo: PromptRepo, history: dict[str, str]) -> None:
    with pytest.raises(PromptReferenceError) as info:
        repo.registry.load("chat/greet@nosuchthing")
    assert info.value.prompt == "chat/greet" and info.value.ref == "nosuchthing"
    assert "no label, version or commit 'nosuchthing'" in str(info.value)
    with pytest.raises(PromptReferenceError):
        repo.registry.load("chat/greet@abcdefabcdef")
    with pytest.raises(PromptReferenceError, match="nothing after '@'"):
        repo.registry.load("chat/greet@")


def test_unknown_prompt_suggests_close_names(repo: PromptRepo, history: dict[str, str]) -> None:
    with pytest.raises(PromptNotFoundError, match="did you mean 'chat/greet'") as info:
        repo.registry.load("chat/gret")
    assert info.value.prompt == "chat/gret"
    with pytest.raises(PromptNotFoundError, match="not a prompt name"):
        repo.registry.load("../etc/passwd")


def test_labels_resolve_and_move(repo: PromptRepo, history: dict[str, str]) -> None:
    registry = repo.registry
    v1, v2, v3 = (versions_of(repo, g) for g in ("Hello", "Howdy", "Good day"))
    assert registry.promote("chat/greet", v1, "production") == (v1, None)
    assert registry.promote("chat/greet", v3, "staging") == (v3, None)
    repo.commit("Label production and staging")
    assert registry.load("chat/greet@production").version == v1
    assert registry.load("chat/greet@production").render(name="A")[0]["content"] == "Hello, A!"
    # move the label: a reviewed commit
    assert registry.promote("chat/greet", v2, "production") == (v2, v1)
    repo.commit("Promote v2")
    assert PromptRegistry(repo.prompts).load("chat/greet@production").version == v2
    # promoting a label's version to another label copies it
    assert registry.promote("chat/greet", "staging", "canary") == (v3, None)
    labels_text = (repo.prompts / "labels.yaml").read_text()
    assert "chat/greet:" in labels_text
    assert f"production: {v2}" in labels_text and f"canary: {v3}" in labels_text
    assert labels_text.startswith("# Labels:")
    assert repo.registry.labels().labels_for("chat/greet", v3) == ["canary", "staging"]
    # the label file's history is git's: the earlier commit still says v1
    assert f"production: {v1}" in repo.git("show", "HEAD~1:prompts/labels.yaml")


def test_promote_refuses_a_version_that_does_not_exist(
    repo: PromptRepo, history: dict[str, str]
) -> None:
    with pytest.raises(PromptReferenceError, match="no label, version or commit"):
        repo.registry.promote("chat/greet", "0123456789ab", "production")
    with pytest.raises(PromptNotFoundError):
        repo.registry.promote("nope", "0123456789ab", "production")
    with pytest.raises(PromptReferenceError, match="would read as a version id"):
        repo.registry.promote("chat/greet", "HEAD", "abcdef123456")
    with pytest.raises(PromptReferenceError, match="must start with a letter"):
        repo.registry.promote("chat/greet", "HEAD", "9lives")
    assert not (repo.prompts / "labels.yaml").exists()


def test_concurrent_promotions_keep_every_label(
    repo: PromptRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two promotions at once (two terminals, two CI jobs) each read labels.yaml, add
    their label and write it back: the second must see the first's label, not write over
    it. Here the first writer is slowed down between its read and its write."""
    from llmops.prompts import registry as registry_module

    repo.write("greet.yaml", prompt_yaml())
    version = repo.registry.load("greet").version
    write = registry_module.write_labels

    def slow_write(folder: Path, labels: Labels) -> Path:
        if "slow" in labels.of("greet"):
            time.sleep(0.5)  # the other promotion runs meanwhile
        return write(folder, labels)

    monkeypatch.setattr(registry_module, "write_labels", slow_write)
    slow = threading.Thread(target=repo.registry.promote, args=("greet", version, "slow"))
    slow.start()
    time.sleep(0.2)
    repo.registry.promote("greet", version, "fast")
    slow.join()
    assert sorted(repo.registry.labels().of("greet")) == ["fast", "slow"]


def test_promote_works_where_the_file_system_has_no_locks(
    repo: PromptRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    repo.write("greet.yaml", prompt_yaml())
    version = repo.registry.load("greet").version
    assert repo.registry.promote("greet", version, "production") == (version, None)


def test_uncommitted_version_can_be_labelled_and_loaded(repo: PromptRepo) -> None:
    repo.write("new.yaml", "template: brand new\n")
    version = repo.registry.load("new").version
    repo.registry.promote("new", version, "staging")
    loaded = repo.registry.load("new@staging")
    assert loaded.version == version and loaded.commit is None


def test_malformed_labels_file_names_line(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml())
    repo.write("labels.yaml", "greet:\n  production: 123\n  staging: not-a-version\n")
    with pytest.raises(PromptFileError) as info:
        repo.registry.load("greet@production")
    assert info.value.file.endswith("labels.yaml")
    assert info.value.line == 2
    repo.write("labels.yaml", "greet:\n  abcdef012345: 0123456789ab\n")
    with pytest.raises(PromptFileError, match="would read as a version id") as info:
        repo.registry.labels()
    assert info.value.line == 2


def test_validate_reports_every_problem(repo: PromptRepo, history: dict[str, str]) -> None:
    assert repo.registry.validate() == []
    repo.write("bad.yaml", "template: hi\nbogus: 1\n")
    repo.write(
        "labels.yaml", "chat/greet:\n  production: 0123456789ab\nghost:\n  x: aaaaaaaaaaaa\n"
    )
    problems = [str(p) for p in repo.registry.validate()]
    assert len(problems) == 3
    assert any("bad.yaml:2: unknown field 'bogus'" in p for p in problems)
    assert any("label 'production'" in p and "0123456789ab" in p for p in problems)
    assert any("labels of 'ghost', which has no prompt file" in p for p in problems)


def test_history_of_an_uncommitted_prompt_is_empty(repo: PromptRepo) -> None:
    repo.write("fresh.yaml", "template: hi\n")
    assert repo.registry.history("fresh") == []
    assert repo.registry.load("fresh").commit is None


def test_without_a_repository(tmp_path: Path) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "greet.yaml").write_text(prompt_yaml())
    registry = PromptRegistry(folder)
    prompt = registry.load("greet")
    assert prompt.commit is None and len(prompt.version) == 12
    assert registry.load(f"greet@{prompt.version}").version == prompt.version
    with pytest.raises(HistoryUnavailableError, match="not inside a git repository"):
        registry.history("greet")
    with pytest.raises(HistoryUnavailableError, match="needs git"):
        registry.load("greet@0123456789ab")
    with pytest.raises(HistoryUnavailableError, match="needs git"):
        registry.load("greet@main")


def test_without_git_installed(
    repo: PromptRepo, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(repo.root / "no-binaries-here"))
    registry = repo.registry
    prompt = registry.load("chat/greet")
    assert prompt.version == versions_of(repo, "Good day")
    assert prompt.commit is None
    with pytest.raises(HistoryUnavailableError, match="git is not installed"):
        registry.history("chat/greet")


def test_load_prompt_uses_the_environment(
    repo: PromptRepo, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOPS_PROMPTS_DIR", str(repo.prompts))
    prompt = llmops.load_prompt("chat/greet")
    assert (prompt.name, prompt.commit) == ("chat/greet", history["v3"])
    monkeypatch.chdir(repo.root)
    monkeypatch.delenv("LLMOPS_PROMPTS_DIR")
    assert llmops.load_prompt("other").render()[0]["content"] == "unrelated"
    versions_of(repo, "Hi")  # writes scratch/x.yaml
    assert llmops.load_prompt("x", prompts_dir=repo.root / "scratch").render(name="Z") == [
        {"role": "user", "content": "Hi, Z!"}
    ]


def test_names_skip_labels_and_hidden_files(repo: PromptRepo) -> None:
    repo.write("a.yaml", "template: a\n")
    repo.write("deep/b.yml", "template: b\n")
    repo.write("labels.yaml", "{}\n")
    repo.write(".hidden.yaml", "template: h\n")
    repo.write("notes.txt", "not a prompt")
    assert repo.registry.names() == ["a", "deep/b"]
    assert repo.registry.load("deep/b").render()[0]["content"] == "b"


def test_names_skip_hidden_folders(repo: PromptRepo) -> None:
    """A file in a hidden folder (.old/, .backup/) has no loadable name (a name's parts
    start with a letter, digit or _), as a hidden file has none: it is not a prompt, and
    validate does not fail on it."""
    repo.write("a.yaml", "template: a\n")
    repo.write(".old/a.yaml", "template: old\n")
    repo.write("deep/.backup/b.yaml", "template: b\n")
    assert repo.registry.names() == ["a"]
    assert repo.registry.validate() == []


def test_the_labels_file_is_not_a_prompt(repo: PromptRepo) -> None:
    """`labels` is not listed as a prompt, so loading it is "no prompt 'labels'", not the
    labels file parsed as a prompt ("unknown field 'greet'")."""
    repo.write("greet.yaml", prompt_yaml())
    repo.registry.promote("greet", repo.registry.load("greet").version, "production")
    for ref in ("labels", "labels@production"):
        with pytest.raises(PromptNotFoundError, match="no prompt 'labels'"):
            repo.registry.load(ref)
    with pytest.raises(PromptNotFoundError):
        repo.registry.promote("labels", "HEAD", "x")
    repo.write("sub/labels.yaml", "template: a prompt named sub/labels\n")
    assert repo.registry.load("sub/labels").render()[0]["content"] == "a prompt named sub/labels"
