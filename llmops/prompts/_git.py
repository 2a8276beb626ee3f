"""Read-only access to git: a file's history (following renames) and its old contents."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmops.errors import GitError, HistoryUnavailableError

_RECORD, _FIELD = "\x1e", "\x1f"


@dataclass(frozen=True)
class Commit:
    """One commit that touched a file, with the file's path at that commit."""

    sha: str
    date: datetime
    author: str
    email: str
    subject: str
    path: str  # repository-relative, as it was at this commit
    boundary: bool = False  # a shallow clone's history stops here: it may not have written it


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_ALL="C", GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    return env


class GitRepo:
    """A git work tree, found from any folder inside it."""

    def __init__(self, root: Path, git: str) -> None:
        self.root = root
        self._git = git
        self._boundary: frozenset[str] | None = None

    @classmethod
    def find(cls, folder: Path) -> GitRepo:
        """The repository holding ``folder``; HistoryUnavailableError when there is none."""
        git = shutil.which("git")
        if git is None:
            raise HistoryUnavailableError("prompt history needs git, and git is not installed")
        result = subprocess.run(
            [git, "rev-parse", "--show-toplevel"],
            cwd=folder,
            capture_output=True,
            text=True,
            env=_git_env(),
            check=False,
        )
        if result.returncode != 0:
            reason = " ".join(result.stderr.split())
            if "dubious ownership" in reason:  # git's safe.directory check (CI containers)
                raise HistoryUnavailableError(
                    f"git refuses the repository holding {folder}: it belongs to another "
                    'user ("dubious ownership"); trust it with `git config --global --add '
                    "safe.directory <its path>`"
                )
            raise HistoryUnavailableError(
                f"prompt history needs git, and {folder} is not inside a git repository"
            )
        return cls(Path(result.stdout.strip()), git)

    @property
    def shallow(self) -> bool:
        """Whether the history is cut short (``git clone --depth``, CI checkouts)."""
        return bool(self.boundary())

    def boundary(self) -> frozenset[str]:
        """The commits a shallow clone's history stops at: git shows every file of such a
        commit as added there, whoever wrote it. Empty in a whole history."""
        if self._boundary is None:
            path = self._run("rev-parse", "--git-path", "shallow").decode().strip()
            try:
                self._boundary = frozenset((self.root / path).read_text().split())
            except OSError:  # no such file: the history is whole
                self._boundary = frozenset()
        return self._boundary

    def _run(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        result = subprocess.run(
            [self._git, "-c", "core.quotePath=false", *args],
            cwd=self.root,
            input=input,
            capture_output=True,
            env=_git_env(),
            check=False,
        )
        if check and result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            raise GitError(f"git {args[0]} failed in {self.root}: {message}")
        return result.stdout

    def relative(self, path: Path) -> str:
        """``path`` relative to the repository root, with forward slashes; a path outside
        the repository (a link to a folder elsewhere) has no history there."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise HistoryUnavailableError(
                f"{path} is outside the git repository {self.root} (a symbolic link to a "
                "folder elsewhere?): git has no history of it"
            ) from None

    def log(self, path: str, rev: str = "HEAD") -> list[Commit]:
        """Commits from ``rev`` back that changed ``path``, newest first, following renames.

        A merge counts when it wrote a text of its own: one that differs from the file in
        each of its parents (a resolved conflict, or git's own merge of a rename on one
        branch with an edit on the other); a merge that took one parent's text does not
        (that parent's commit wrote the version)."""
        if self.head() is None:
            return []
        found = self._followed(path, rev, merges=False)  # git lists no merge here
        # Without --follow, git's history simplification leaves exactly the merges whose
        # file differs from every parent's: asked for each name the file had.
        wrote: set[str] = set()
        for name in dict.fromkeys([path, *(commit.path for commit, _ in found)]):
            listed = self._run("log", "--merges", "--format=%H", rev, "--", name)
            wrote.update(listed.decode().split())
        if wrote:  # rare: read again with the merges, in git's order (slower)
            found = self._followed(path, rev, merges=True)
        return [commit for commit, merge in found if not merge or commit.sha in wrote]

    def _followed(self, path: str, rev: str, *, merges: bool) -> list[tuple[Commit, bool]]:
        """``git log --follow``'s commits that changed ``path``, newest first, and whether
        each is a merge (listed, with ``merges``, whatever it did to the file)."""
        fields = _FIELD.join(["%H", "%aI", "%an", "%ae", "%s", "%P"])
        out = self._run(
            "log",
            "--follow",
            "-M",
            *(["--cc"] if merges else []),  # lists every merge, with its change if any
            f"--format={_RECORD}{fields}",
            "--name-status",
            rev,
            "--",
            path,
        ).decode("utf-8", errors="replace")
        found: list[tuple[Commit, bool]] = []
        current = path  # the file's path at the commit being read, newest first
        for record in out.split(_RECORD)[1:]:
            header, _, changes = record.partition("\n")
            sha, date, author, email, subject, parents = header.split(_FIELD)
            when = datetime.fromisoformat(date).astimezone(UTC)
            cut = sha in self.boundary()
            merge = len(parents.split()) > 1
            status_lines = [line for line in changes.splitlines() if line.strip()]
            if not status_lines:
                if merge:  # --follow shows no rename in a merge: the path it had then
                    found.append((Commit(sha, when, author, email, subject, current, cut), True))
                continue
            parts = status_lines[0].split("\t")
            if parts[0].startswith("D"):
                continue  # the file was deleted here: no content to load
            commit = Commit(sha, when, author, email, subject, _unquoted(parts[-1]), cut)
            found.append((commit, merge))
            current = _unquoted(parts[1]) if parts[0].startswith("R") else commit.path
        return found

    def head(self) -> str | None:
        """The sha of HEAD, or None in a repository with no commits yet."""
        return (
            self._run("rev-parse", "--verify", "-q", "HEAD", check=False).decode().strip() or None
        )

    def resolve_commit(self, ref: str) -> str | None:
        """The full sha of commit-ish ``ref``, or None when it names no commit."""
        if ref.startswith("-"):
            return None
        out = self._run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return out.decode().strip() or None

    def last_change(self, path: str, rev: str) -> str | None:
        """The newest commit at or before ``rev`` that changed ``path``."""
        out = self._run("log", "-1", "--format=%H", rev, "--", path, check=False)
        return out.decode().strip() or None

    def sizes(self, specs: list[tuple[str, str]]) -> list[int | None]:
        """The size in bytes of each ``(commit, path)`` blob, None where it is absent; read
        before the texts, so that a huge old file is never loaded."""
        if not specs:
            return []
        request = "".join(f"{rev}:{path}\n" for rev, path in specs).encode("utf-8")
        lines = self._run("cat-file", "--batch-check", input=request).splitlines()
        found: list[int | None] = []
        for line in lines[: len(specs)]:
            header = line.split()
            blob = len(header) == 3 and header[1] == b"blob" and header[2].isdigit()
            found.append(int(header[2]) if blob else None)
        return found

    def read(self, specs: list[tuple[str, str]]) -> list[str | None]:
        """The text of each ``(commit, path)``, None where the file is absent; one git process."""
        if not specs:
            return []
        request = "".join(f"{rev}:{path}\n" for rev, path in specs).encode("utf-8")
        out = self._run("cat-file", "--batch", input=request)
        texts: list[str | None] = []
        pos = 0
        for _ in specs:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) != 3 or not header[2].isdigit():
                texts.append(None)  # "<spec> missing" or "<spec> ambiguous"
                continue
            size = int(header[2])
            body = out[pos : pos + size]
            # bytes that are not UTF-8 stay visible (lone surrogates), so that parsing
            # refuses the file as the working tree's would, instead of reading U+FFFD
            text = body.decode("utf-8", errors="surrogateescape")
            texts.append(text if header[1] == b"blob" else None)
            pos += size + 1
        return texts


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquoted(path: str) -> str:
    """A path as git prints it: in double quotes, C-escaped, when it holds a quote, a
    backslash or a control character (``core.quotePath=false`` leaves other text as is)."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    out = bytearray()
    text, index = path[1:-1], 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 == len(text):
            out += char.encode("utf-8", errors="surrogateescape")
            index += 1
        elif text[index + 1] in "01234567":
            out.append(int(text[index + 1 : index + 4], 8) & 0xFF)
            index += 4
        else:
            out.append(_ESCAPES.get(text[index + 1], ord(text[index + 1])))
            index += 2
    return out.decode("utf-8", errors="surrogateescape")
