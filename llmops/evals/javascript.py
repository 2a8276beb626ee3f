"""``javascript`` assertions, run by Node.js as promptfoo runs them.

``value`` is an expression (``output.includes('Paris')``), a function body (several lines,
with ``return``), or ``file://checks.js`` / ``file://checks.js:name`` (a CommonJS module
exporting the function, or ``default``). The code gets ``output`` (the text) and
``context`` (``vars``, ``cost``, ``latency_ms``, ``config``: the assertion's config) and
returns a boolean, a number (it passes above 0, or at ``threshold`` when one is given) or
``{pass, score, reason}``; a promise of one is awaited.

Each check is one ``node`` process (about 40 ms), with a timeout. Without Node.js on the
machine the assertion is an error naming what is missing, not a failure.

The result comes back in a file of its own, not on stdout: what the code prints
(``console.log``, ``process.stdout.write``, stderr) cannot corrupt it. That is kept as
the tail of the log a failing or erroring check's reason ends with (:func:`with_logged`).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 1_000_000
LOGGED_CHARS = 500  # the tail of what the code printed that a failing check's reason shows

# Reads {code, file, name, output, context} on stdin; writes {ok, result} or {ok, error} to
# the file named by its first argument (taken before the code runs), never to stdout.
_RUNNER = r"""
const resultPath = process.argv[1];
const { writeFileSync } = require('fs');
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  let answer;
  try {
    const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    let fn;
    if (job.file) {
      const mod = require(job.file);
      fn = job.name ? mod[job.name] : (typeof mod === 'function' ? mod : mod.default);
      if (typeof fn !== 'function') {
        throw new Error(`${job.file} exports no function ${job.name || '(default)'}`);
      }
    } else {
      fn = new Function('output', 'context', job.code);
    }
    const result = await fn(job.output, job.context);
    answer = { ok: true, result: result === undefined ? null : result };
  } catch (err) {
    answer = { ok: false, error: String((err && err.message) || err) };
  }
  writeFileSync(resultPath, JSON.stringify(answer));
});
"""


def node() -> str | None:
    """The ``node`` executable, or None."""
    return shutil.which("node")


def function_body(code: str) -> str:
    """promptfoo's reading of a one-line value as an expression: ``return (...)``; a value
    of several lines is a function body already."""
    text = code.strip()
    if "\n" in text:
        return text
    text = text.rstrip(";").strip()
    if text.startswith(("const ", "let ", "var ")) and ";" in text:
        statements, _, last = text.rpartition(";")
        return f"{statements}; return ({last.strip()});" if last.strip() else text
    return f"return ({text});"


def run(
    value: str, output: str, context: dict[str, Any], base_dir: Path
) -> tuple[bool | float | dict[str, Any] | None, str | None, str]:
    """Run one check; returns (result, None, logged) or (None, why it could not run,
    logged), ``logged`` the tail of what the code printed (stdout and stderr), or ""."""
    executable = node()
    if executable is None:
        return None, "javascript assertions need Node.js: `node` is not on PATH", ""
    spec = value.strip()
    job: dict[str, Any] = {"output": output, "context": context}
    if spec.startswith("file://"):
        target, _, name = spec.removeprefix("file://").partition(":")
        path = (base_dir / target).resolve()
        if not path.is_file():
            return None, f"javascript: no file {path}", ""
        job.update(file=str(path), name=name or None)
    else:
        job["code"] = function_body(spec)
    with tempfile.TemporaryDirectory(prefix="llmops-js-") as scratch:
        result_path = Path(scratch) / "result.json"
        try:
            done = subprocess.run(
                [executable, "-e", _RUNNER, str(result_path)],
                input=json.dumps(job, default=str).encode(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,  # one log, in the order it was printed
                timeout=TIMEOUT_S,
                cwd=base_dir if base_dir.is_dir() else None,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            logged = _tail(exc.output if isinstance(exc.output, bytes) else b"")
            return None, f"javascript did not finish in {TIMEOUT_S:g} s", logged
        logged = _tail(done.stdout)
        if not result_path.is_file():
            return (
                None,
                f"javascript failed: node exited with code {done.returncode} and no result",
                logged,
            )
        with result_path.open(encoding="utf-8", errors="replace") as file:
            text = file.read(MAX_OUTPUT_BYTES + 1)  # characters, as stdout was read before
    if len(text) > MAX_OUTPUT_BYTES:
        return None, "javascript returned more than 1 MB", logged
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return None, f"javascript failed: unreadable result {text[:300]!r}", logged
    if not answer.get("ok"):
        return None, f"javascript threw: {str(answer.get('error'))[:300]}", logged
    return answer.get("result"), None, logged


def _tail(printed: bytes) -> str:
    """The last :data:`LOGGED_CHARS` characters of what the code printed, on one line
    (its lines joined by `` | ``), or ""."""
    text = printed[-4 * LOGGED_CHARS :].decode("utf-8", errors="replace")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    joined = " | ".join(line for line in lines if line)
    if len(printed) > 4 * LOGGED_CHARS or len(joined) > LOGGED_CHARS:
        return "..." + joined[-LOGGED_CHARS:]
    return joined


def with_logged(reason: str, logged: str) -> str:
    """``reason`` followed by what the code printed, when it printed anything."""
    return f"{reason}; logged: {logged}" if logged else reason


def verdict(result: Any, threshold: float | None) -> tuple[bool, float, str] | str:
    """promptfoo's reading of what the code returned: (passed, score, reason), or why the
    result is not one it can read."""
    if isinstance(result, bool):
        return result, float(result), f"returned {str(result).lower()}"
    if isinstance(result, int | float):
        number = float(result)
        if not math.isfinite(number):
            return f"returned {number}, not a finite number"
        passed = number > 0 if threshold is None else number >= threshold
        score = number if 0 <= number <= 1 else float(passed)
        return passed, score, f"returned {number:g}"
    if isinstance(result, dict) and "pass" in result:
        passed = bool(result["pass"])
        score = result.get("score", float(passed))
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            score = float(passed)
        return passed, float(score), str(result.get("reason") or f"pass: {passed}")
    shown = json.dumps(result)[:100]
    return f"must return a boolean, a number or {{pass, score, reason}}, got {shown}"
