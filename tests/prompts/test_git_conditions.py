"""Prompt history under the conditions CI pipelines and real repositories make: a shallow
clone, a repository git refuses, links out of the repository, old files that are not
UTF-8, and the labels file's mode."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmops.errors import (
    HistoryUnavailableError,
    PromptFileError,
    PromptNotFoundError,
    PromptReferenceError,
)
from llmops.prompts import PromptRegistry
from tests.conftest import PromptRepo, prompt_yaml


@pytest.fixture
def promoted(repo: PromptRepo) -> PromptRepo:
    """greet v1 labelled production, then v2, then a commit that does not touch it."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.registry.promote("greet", "HEAD", "production")
    repo.commit("promote v1")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    repo.commit("v2")
    (repo.root / "README.md").write_text("unrelated\n")
    repo.commit("unrelated commit")
    return repo


def shallow_clone(repo: PromptRepo, tmp_path: Path) -> PromptRegistry:
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone)], check=True
    )
    return PromptRegistry(clone / "prompts")


def test_a_shallow_clone_names_no_commit_it_cannot_know(promoted: PromptRepo, tmp_path) -> None:
    """`git clone --depth 1` (CI's default checkout) shows every file as added by its one
    commit: the version is right, but who wrote it is unknown, never the wrong commit."""
    full = promoted.registry.load("greet")
    registry = shallow_clone(promoted, tmp_path)
    working = registry.load("greet")
    assert working.version == full.version and full.commit is not None
    assert working.commit is None  # not the "unrelated commit" at the tip
    (row,) = registry.history("greet")
    assert row.boundary and row.subject == "unrelated commit"
    assert registry.load(f"greet@{full.version}").commit is None
    for ref in ("greet@production", "greet@HEAD~1"):
        with pytest.raises(PromptReferenceError, match="this is a shallow clone") as caught:
            registry.load(ref)
        assert "fetch-depth: 0" in str(caught.value)
    assert not promoted.registry.history("greet")[0].boundary  # the whole history


def test_the_evidence_report_refuses_a_shallow_clone(promoted, tmp_path, cli) -> None:
    registry = shallow_clone(promoted, tmp_path)
    result = cli(
        "audit", "report", "greet", "--database-url",
        f"sqlite:///{tmp_path / 'calls.db'}", "--out", str(tmp_path / "report.html"),
        cwd=registry.root.parent,
    )  # fmt: skip
    assert result.code == 2 and "needs the whole git history" in result.stderr, result.stderr
    assert not (tmp_path / "report.html").exists()


def test_a_prompt_folder_linked_from_outside_has_no_history(repo: PromptRepo, tmp_path) -> None:
    outside = tmp_path / "outside" / "team"
    outside.mkdir(parents=True)
    (outside / "greet.yaml").write_text(prompt_yaml("Hi"))
    (repo.prompts / "team").symlink_to(outside)
    repo.commit("link")
    registry = repo.registry
    assert registry.load("team/greet").commit is None  # the file itself loads
    with pytest.raises(HistoryUnavailableError, match="outside the git repository"):
        registry.load("team/greet@HEAD")


def test_an_old_file_that_is_not_utf8_is_refused_as_the_working_trees(repo: PromptRepo) -> None:
    path = repo.write("greet.yaml", prompt_yaml("Vous êtes"))
    path.write_bytes(path.read_bytes().replace("ê".encode(), "ê".encode("latin-1")))
    repo.commit("latin-1")
    with pytest.raises(PromptFileError, match="not a text file"):
        repo.registry.load("greet")
    repo.write("greet.yaml", prompt_yaml("Vous êtes"))
    repo.commit("utf-8")
    with pytest.raises(PromptFileError, match=r"not UTF-8 text \(byte 0xea\)"):
        repo.registry.load("greet@HEAD~1")  # it read "Vous \ufffdtes" before
    assert [row.version is None for row in repo.registry.history("greet")] == [False, True]


def test_promote_keeps_the_labels_files_mode(promoted: PromptRepo) -> None:
    labels = promoted.prompts / "labels.yaml"
    assert labels.stat().st_mode & 0o777 == 0o644  # a new labels file (read by all)
    labels.chmod(0o664)
    promoted.registry.promote("greet", "HEAD", "staging")
    assert labels.stat().st_mode & 0o777 == 0o664


def test_validate_resolves_a_label_as_loading_does(promoted: PromptRepo) -> None:
    """A label holds a version id: a commit prefix that looks like one is not a version."""
    head = promoted.git("rev-parse", "HEAD")[:12]
    labels = promoted.prompts / "labels.yaml"
    labels.write_text(f"greet: {{production: {head}}}\n")
    with pytest.raises(PromptReferenceError, match=f"has no version {head}"):
        promoted.registry.load("greet@production")
    (problem,) = promoted.registry.validate()
    assert f"label 'production': prompt 'greet' has no version {head}" in str(problem)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to chown"
)
def test_a_repository_git_refuses_says_why(repo: PromptRepo) -> None:
    """git's safe.directory check (a checkout owned by another user, as in CI containers)
    is named, with its fix, instead of "not inside a git repository"."""
    repo.write("greet.yaml", prompt_yaml())
    repo.commit("v1")
    subprocess.run(["chown", "-R", "nobody", str(repo.root)], check=True)
    with pytest.raises(HistoryUnavailableError, match=r"dubious ownership.*safe\.directory"):
        repo.registry.history("greet")


def test_prompts_in_a_linked_folder_are_listed_and_validated(repo: PromptRepo) -> None:
    """A folder of prompts linked into prompts/ (shared between teams): listed and checked
    as `show` and `eval run` find them; a link back to a parent does not loop."""
    shared = repo.root / "shared"
    shared.mkdir()
    (shared / "greet.yaml").write_text(prompt_yaml("Hi", extra="unknown_field: 1\n"))
    (repo.prompts / "team").symlink_to(shared)
    (shared / "loop").symlink_to(repo.prompts)
    assert repo.registry.names() == ["team/greet"]
    (problem,) = repo.registry.validate()
    assert "unknown field 'unknown_field'" in str(problem)


def test_history_in_a_folder_whose_name_git_quotes(tmp_path) -> None:
    """git prints a path holding a quote or a backslash in C quotes, even with
    core.quotePath=false: the history reads it back."""
    root = tmp_path / "project"
    folder = root / 'team "a" prompts\\x'
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    repo = PromptRepo(root)
    (folder / "greet.yaml").write_text(prompt_yaml("Hello"))
    first = repo.commit("v1")
    (folder / "greet.yaml").write_text(prompt_yaml("Howdy"))
    repo.commit("v2")
    registry = PromptRegistry(folder)
    rows = registry.history("greet")
    assert [row.version is not None for row in rows] == [True, True]
    assert registry.load(f"greet@{rows[1].version}").commit == first


def test_an_old_file_too_large_for_a_prompt_is_never_read(repo: PromptRepo, monkeypatch) -> None:
    """Loading the working tree reads every old version to find the commit that wrote it:
    one far over the size limit is sized, not read (it took 930 MB for a 300 MB file)."""
    from llmops.files import MAX_YAML_BYTES
    from llmops.prompts import _git

    path = repo.write("greet.yaml", prompt_yaml("Hello", extra="# " + "x" * MAX_YAML_BYTES + "\n"))
    repo.commit("huge")
    path.write_text(prompt_yaml("Hello"))
    repo.commit("normal")
    read = _git.GitRepo.read
    asked: list[tuple[str, str]] = []

    def spy(self, specs):
        asked.extend(specs)
        return read(self, specs)

    monkeypatch.setattr(_git.GitRepo, "read", spy)
    registry = repo.registry
    assert registry.load("greet").commit == repo.git("rev-parse", "HEAD")
    assert len(asked) == 1  # the normal version only
    assert [row.version is None for row in registry.history("greet")] == [False, True]
    with pytest.raises(PromptFileError, match="larger than 2 MB, the limit for a prompt file"):
        registry.load("greet@HEAD~1")


def test_a_merge_conflict_in_the_labels_file_is_named(promoted: PromptRepo) -> None:
    """Two branches promote the same prompt: the merge leaves git's markers in labels.yaml."""
    labels = promoted.prompts / "labels.yaml"
    labels.write_text(
        "greet:\n<<<<<<< HEAD\n  production: aaaaaaaaaaaa\n=======\n"
        "  production: bbbbbbbbbbbb\n>>>>>>> feature\n"
    )
    with pytest.raises(PromptFileError, match="merge conflict is left") as caught:
        promoted.registry.load("greet@production")
    assert caught.value.line == 2


def test_validate_reports_labels_of_a_prompt_that_is_gone(promoted: PromptRepo) -> None:
    """Renamed in a commit, its labels left behind: `prompts list` shows them nowhere."""
    promoted.git("mv", "prompts/greet.yaml", "prompts/hello.yaml")
    promoted.commit("rename")
    (problem,) = promoted.registry.validate()
    assert "labels of 'greet', which has no prompt file (renamed or deleted?)" in str(problem)


def test_promote_refuses_a_prompt_that_is_gone(promoted: PromptRepo) -> None:
    """validate calls the labels of a prompt with no file an error: promote does not write
    one (an old version of a deleted prompt still loads, for show and diff)."""
    old = promoted.registry.load("greet@production").version
    promoted.git("rm", "-q", "prompts/greet.yaml")
    promoted.commit("delete greet")
    assert promoted.registry.load(f"greet@{old}").version == old
    before = (promoted.prompts / "labels.yaml").read_text()
    with pytest.raises(PromptNotFoundError, match="no prompt file"):
        promoted.registry.promote("greet", old, "staging")
    assert (promoted.prompts / "labels.yaml").read_text() == before


def test_a_merge_that_wrote_new_content_is_in_the_history(repo: PromptRepo) -> None:
    """Two branches edit the prompt and the merge commit resolves them into a third text:
    that version was committed by the merge, so it is in the history and carries the
    merge's commit (not shown as uncommitted, and loadable by id once the file moves on)."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("greet.yaml", prompt_yaml("Hi"))
    repo.commit("feature: Hi")
    repo.git("checkout", "-q", "main")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    repo.commit("main: Howdy")
    subprocess.run(["git", "merge", "-q", "feature"], cwd=repo.root, capture_output=True)
    repo.write("greet.yaml", prompt_yaml("Hi there"))
    merge = repo.commit("merge feature")
    merged = repo.registry.load("greet")
    assert merged.commit == merge
    history = repo.registry.history("greet")
    assert [row.commit for row in history].count(merge) == 1
    assert history[0].commit == merge and history[0].version == merged.version
    repo.write("greet.yaml", prompt_yaml("Bye"))
    repo.commit("v5")
    assert repo.registry.load(f"greet@{merged.version}").commit == merge


def test_a_clean_merge_of_a_rename_and_an_edit_is_committed(repo: PromptRepo) -> None:
    """A branch renames the file while main edits it; git merges both without a conflict:
    the merged text is the merge commit's, not "uncommitted"."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.git("checkout", "-q", "-b", "feature")
    repo.git("mv", "prompts/greet.yaml", "prompts/hello.yaml")
    repo.commit("rename")
    repo.git("checkout", "-q", "main")
    repo.write("greet.yaml", prompt_yaml("Hello", model="gpt-4o"))
    repo.commit("main: model")
    repo.git("merge", "-q", "feature", "-m", "merge feature")
    merge = repo.git("rev-parse", "HEAD")
    assert repo.registry.load("hello").commit == merge


def test_a_merge_that_took_a_branchs_text_adds_no_version(repo: PromptRepo) -> None:
    """A branch edits the prompt, main changes another file, and the branch is merged: the
    version is the branch commit's, and the merge is no row of the history."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("greet.yaml", prompt_yaml("Hi"))
    edit = repo.commit("feature: Hi")
    repo.git("checkout", "-q", "main")
    (repo.root / "other.txt").write_text("x\n")
    repo.git("add", "other.txt")
    repo.commit("main: other file")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    assert repo.registry.load("greet").commit == edit
    assert [row.subject for row in repo.registry.history("greet")] == ["feature: Hi", "v1"]
