"""``javascript`` assertions, run by Node.js as promptfoo runs them.

``value`` is an expression (``output.includes('Paris')``), a function body (several lines,
with ``return``), or ``file://checks.js`` / ``file://checks.js:name`` (a CommonJS module
exporting the function, or ``default``). The code gets ``output`` (the text) and
``context`` (``vars``, ``cost``, ``latency_ms``, ``config``: the assertion's config) and
returns a boolean, a number (it passes above 0, or at ``threshold`` when one is given) or
``{pass, score, reason}``; a promise of one is awaited.

Each check is one ``node`` process (about 40 ms), with a timeout. Without Node.js on the
machine the assertion is an error naming what is missing, not a failure.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 1_000_000

# Reads {code, file, name, output, context} on stdin; prints {ok, result} or {ok, error}.
_RUNNER = r"""
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
  process.stdout.write(JSON.stringify(answer));
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
) -> tuple[bool | float | dict[str, Any] | None, str | None]:
    """Run one check; returns (result, None) or (None, why it could not run)."""
    executable = node()
    if executable is None:
        return None, "javascript assertions need Node.js: `node` is not on PATH"
    spec = value.strip()
    job: dict[str, Any] = {"output": output, "context": context}
    if spec.startswith("file://"):
        target, _, name = spec.removeprefix("file://").partition(":")
        path = (base_dir / target).resolve()
        if not path.is_file():
            return None, f"javascript: no file {path}"
        job.update(file=str(path), name=name or None)
    else:
        job["code"] = function_body(spec)
    try:
        done = subprocess.run(
            [executable, "-e", _RUNNER],
            input=json.dumps(job, default=str),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=base_dir if base_dir.is_dir() else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"javascript did not finish in {TIMEOUT_S:g} s"
    if len(done.stdout) > MAX_OUTPUT_BYTES:
        return None, "javascript returned more than 1 MB"
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return None, f"javascript failed: {detail[-1][:300] if detail else 'no output'}"
    if not answer.get("ok"):
        return None, f"javascript threw: {str(answer.get('error'))[:300]}"
    return answer.get("result"), None


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
