"""``llmops eval import promptfoo``: a promptfoo config (``promptfooconfig.yaml``) as llmops
prompt files and eval suites.

What maps is converted; what llmops cannot express is never dropped silently: each item is
a notice naming its place in the config (``tests[3].assert[1]: type 'similar' is not
supported by llmops; skipped``), printed by the command and kept as a comment at the top of
the suite. Nothing is written here: :func:`import_config` returns the files' text and
:func:`write_files` writes them.

Several prompts become several prompt files, and one suite each with the same cases: llmops
compares versions of one prompt (its git history), not unrelated prompts.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from llmops.errors import ConfigError, ConfigFileError
from llmops.evals import suite as suite_format
from llmops.evals.importers import _yaml_out
from llmops.evals.importers._templates import (
    ROLES,
    chat_messages,
    messages_from,
    nunjucks_to_jinja,
)
from llmops.evals.javascript import function_body
from llmops.files import (
    MAX_YAML_BYTES,
    check_directory,
    check_output_file,
    parse_json,
    parse_yaml,
    read_text,
    write_private,
)

__all__ = ["ImportResult", "import_config", "litellm_model", "write_files"]

# -- providers ------------------------------------------------------------------------------

# promptfoo's provider prefix -> litellm's, for "PREFIX:MODEL" (a leading "chat:" or
# "completion:" mode is dropped: llmops always sends chat messages)
_PREFIXES = {
    "openai": "",
    "anthropic": "anthropic/",
    "azure": "azure/",
    "azureopenai": "azure/",
    "litellm": "",
    "vertex": "vertex_ai/",
    "google": "gemini/",
    "gemini": "gemini/",
    "bedrock": "bedrock/",
    "mistral": "mistral/",
    "groq": "groq/",
    "together": "together_ai/",
    "togetherai": "together_ai/",
    "openrouter": "openrouter/",
    "deepseek": "deepseek/",
    "perplexity": "perplexity/",
    "cohere": "cohere_chat/",
    "fireworks": "fireworks_ai/",
    "xai": "xai/",
    "cerebras": "cerebras/",
    "huggingface": "huggingface/",
    "replicate": "replicate/",
    "cloudflare-ai": "cloudflare/",
    "watsonx": "watsonx/",
    "databricks": "databricks/",
    "sambanova": "sambanova/",
    "vllm": "hosted_vllm/",
    "lmstudio": "lm_studio/",
    "nvidia": "nvidia_nim/",
    "ai21": "ai21_chat/",
}
_MODES = ("chat", "completion", "messages", "responses", "text-generation", "converse")
_NOT_CHAT = ("embedding", "embeddings", "moderation", "image", "assistant", "realtime",
             "transcription", "speech", "classification", "agents", "agent")  # fmt: skip
_CANNOT_CALL = {
    "exec": "runs a command",
    "python": "runs a Python script",
    "file": "loads a provider from a file",
    "http": "calls an HTTP endpoint",
    "https": "calls an HTTP endpoint",
    "webhook": "calls a webhook",
    "websocket": "calls a WebSocket",
    "echo": "echoes the prompt",
    "sequence": "chains providers",
    "golang": "runs a Go program",
    "ruby": "runs a Ruby script",
    "browser": "drives a browser",
    "mcp": "calls an MCP server",
    "promptfoo": "is promptfoo's own service",
    "manual-input": "asks a person",
    "simulated-user": "simulates a user",
    "package": "loads a JavaScript package",
}


def litellm_model(provider_id: str) -> tuple[str | None, str]:
    """litellm's model name for a promptfoo provider id (``openai:chat:gpt-4o`` ->
    ``gpt-4o``, ``azure:chat:my-deployment`` -> ``azure/my-deployment``), or None and why
    llmops cannot call it."""
    text = provider_id.strip()
    prefix, colon, rest = text.partition(":")
    if prefix.lower() in _CANNOT_CALL and prefix.lower() != "file":
        return None, f"{_CANNOT_CALL[prefix.lower()]}, which llmops cannot do"
    if text.startswith("file://") or text.endswith((".js", ".ts", ".py", ".mjs", ".cjs")):
        return None, "is a custom provider file, which llmops cannot call"
    if not colon:
        return (text, "") if text and text not in _CANNOT_CALL else (None, "is not a model")
    prefix = prefix.lower()
    if prefix in _CANNOT_CALL:
        return None, f"{_CANNOT_CALL[prefix]}, which llmops cannot do"
    if prefix == "ollama":
        mode, _, model = rest.partition(":")
        if mode in ("chat", "completion", "embedding", "embeddings"):
            if mode.startswith("embedding"):
                return None, "is an embedding model, not a chat model"
            return f"{'ollama_chat' if mode == 'chat' else 'ollama'}/{model}", ""
        return f"ollama/{rest}", ""
    if prefix not in _PREFIXES:
        return None, f"uses promptfoo's {prefix!r} provider, which the importer cannot map"
    mode, _, model = rest.partition(":")
    if mode in _NOT_CHAT:
        return None, f"is a {mode} provider, not a chat model"
    if mode in _MODES and model:
        rest = model
    if not rest:
        return None, "names no model"
    if prefix == "openai" and mode == "completion":
        return f"text-completion-openai/{rest}", ""
    if prefix == "bedrock" and rest.startswith("converse:"):
        rest = rest.removeprefix("converse:")
    return f"{_PREFIXES[prefix]}{rest}", ""


# model parameters litellm takes as they are, and promptfoo's other spellings of them
_PARAMS = frozenset({
    "temperature", "max_tokens", "max_completion_tokens", "top_p", "top_k", "functions",
    "function_call",
    "frequency_penalty", "presence_penalty", "stop", "seed", "response_format", "tools",
    "tool_choice", "reasoning_effort", "parallel_tool_calls", "logit_bias", "thinking",
    "repetition_penalty", "min_p", "verbosity",
})  # fmt: skip
_RENAMED = {
    "num_predict": "max_tokens",
    "maxOutputTokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "maxTokens": "max_tokens",
    "max_new_tokens": "max_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "stopSequences": "stop",
    "stop_sequences": "stop",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}


def _tools(functions: Any) -> tuple[str, Any]:
    items = functions if isinstance(functions, list) else [functions]
    return "tools", [{"type": "function", "function": f} for f in items]


def _tool_choice(choice: Any) -> tuple[str, Any]:
    if isinstance(choice, dict) and "name" in choice:
        return "tool_choice", {"type": "function", "function": {"name": choice["name"]}}
    return "tool_choice", choice  # "auto", "none"


# OpenAI's deprecated function calling, which promptfoo configs still use
_LEGACY_FUNCTIONS = {"functions": _tools, "function_call": _tool_choice}
_NOT_A_PARAM = "not a model parameter llmops passes; not imported"
_CREDENTIALS = "credentials are not imported: llmops (litellm) reads them from the environment"
_ENDPOINT = (
    "endpoints are not imported: set litellm's variable (OPENAI_API_BASE, "
    "AZURE_API_BASE, OLLAMA_API_BASE, ...) in the environment"
)
_CONNECTION = {
    "apiKey": _CREDENTIALS,
    "apiKeyEnvar": _CREDENTIALS,
    "api_key": _CREDENTIALS,
    "apiBaseUrl": _ENDPOINT,
    "apiHost": _ENDPOINT,
    "baseUrl": _ENDPOINT,
    "api_base": _ENDPOINT,
    "headers": "extra HTTP headers are not imported",
}

# -- assertions -------------------------------------------------------------------------------

_ASSERTION_KEYS = (
    "type", "value", "threshold", "weight", "metric", "provider", "assert", "config",
)  # fmt: skip
_SPLIT_TYPES = ("contains-any", "contains-all", "icontains-any", "icontains-all")
_SCRIPT_TYPES = ("python", "javascript")
#: Types whose ``provider`` is a model llmops calls (a judge, or similar's embedder).
_JUDGED = ("llm-rubric", *suite_format.MODEL_GRADED_TYPES, suite_format.SELECT_BEST)
_JS_TRANSFORM = (
    "promptfoo's transforms are JavaScript and llmops' are Python: rewrite it as a "
    "`transform` (or `options: {transform}`) in the suite"
)

# top-level keys of a promptfoo config the importer reads
_READ = ("description", "prompts", "providers", "targets", "tests", "defaultTest",
         "evaluateOptions")  # fmt: skip
_WHY = {
    "scenarios": "llmops has no scenarios: write each combination of vars as a case",
    "derivedMetrics": "llmops averages named metrics; it has no derived formulas",
    "nunjucksFilters": "custom Nunjucks filters cannot run in llmops' sandbox",
    "extensions": "promptfoo extension hooks do not run in llmops",
    "outputPath": "llmops writes reports with --junit/--markdown/--json",
    "sharing": "llmops shares nothing; results are stored in its database",
    "env": "llmops reads provider keys from the environment; set them there",
    "redteam": "red-teaming is not part of llmops",
    "commandLineOptions": "llmops' options are its command line's",
    "writeLatestResults": "llmops stores every run in its database",
    "tracing": "traces are not imported",
    "metadata": "the config's metadata is not imported",
    "tags": "the config's tags are not imported",
}


class _Refused(Exception):
    """An item the importer reports and skips."""


@dataclass
class ImportResult:
    """What an import would write, and what it could not express."""

    config: Path
    files: dict[Path, str] = field(default_factory=dict)
    prompt_files: list[Path] = field(default_factory=list)
    suite_files: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cases: int = 0
    assertions: int = 0
    models: list[str] = field(default_factory=list)

    def summary(self) -> str:
        prompts = len(self.prompt_files)
        return (
            f"{self.cases} case{_s(self.cases)}, {self.assertions} assertion"
            f"{_s(self.assertions)}, {prompts} prompt{_s(prompts)}, {len(self.models)} model"
            f"{_s(len(self.models))}; {len(self.notices)} item{_s(len(self.notices))} not "
            "imported"
        )


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def slug(text: str, limit: int = 48) -> str:
    """A file and case name from free text: lower-case words joined by hyphens."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    name = ""
    for word in words:
        candidate = f"{name}-{word}" if name else word
        if len(candidate) > limit:
            break
        name = candidate
    return name or (words[0][:limit] if words else "")


@dataclass
class _Prompt:
    label: str
    where: str
    body: dict[str, Any]  # template: ... or messages: [...]
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Provider:
    model: str
    where: str
    params: dict[str, Any]
    label: str | None = None


_NO_DEFAULT_ASSERT = "__no_default_assert"
"""Marks an imported case whose own transform was left out: defaultTest's assertions would
check its untransformed output."""


def defaults_apart(cases: list[dict[str, Any]], default: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases, each with defaultTest's assertions of its own when some case must go
    without them (its transform was not imported); llmops' ``defaults.assert`` applies to
    every case, so they are then written per case and ``default["assert"]`` emptied."""
    if not any(case.get(_NO_DEFAULT_ASSERT) for case in cases):
        return cases
    shared, default["assert"] = default["assert"], []
    out = []
    for case in cases:
        item = dict(case)
        if not item.pop(_NO_DEFAULT_ASSERT, False):
            item["assert"] = [*shared, *item.get("assert", [])]
        out.append(item)
    return out


class _Importer:
    def __init__(self, config: Path, out: Path | None, prompts_dir: Path) -> None:
        self.config = config
        self.base = config.parent
        self.prompts_dir = prompts_dir
        self.out = out
        self.notices: list[str] = []
        self.notes: list[str] = []
        self.embedder: str | None = None
        self.suite_dir = out.parent if out is not None else Path("evals")

    # -- reporting ----------------------------------------------------------------------

    def skip(self, where: str, message: str) -> None:
        self.notices.append(f"{where}: {message}")

    def fail(self, message: str, file: Path | None = None, line: int | None = None) -> NoReturn:
        raise ConfigFileError(message, file=file or self.config, line=line)

    # -- files --------------------------------------------------------------------------

    def path(self, reference: str) -> Path:
        """A path of the config (``file://`` optional), relative to the config's folder."""
        return self.base / reference.strip().removeprefix("file://")

    def glob(self, reference: str) -> list[Path]:
        pattern = reference.strip().removeprefix("file://")
        if not any(c in pattern for c in "*?["):
            return [self.path(pattern)]
        root = str(self.base)
        found = sorted(glob.glob(pattern, root_dir=root, recursive=True))
        return [self.base / name for name in found if (self.base / name).is_file()]

    def read(self, path: Path, what: str) -> str:
        return read_text(path, what=what)

    def data_file(self, path: Path, what: str) -> Any:
        """A JSON or YAML file's data (YAML read with llmops' alias and depth limits)."""
        text = self.read(path, what)
        if path.suffix.lower() == ".json":
            return parse_json(text, path)
        return parse_yaml(text, path, core=True)[0]

    # -- the config ----------------------------------------------------------------------

    def run(self) -> tuple[dict[str, Any], list[_Prompt], list[_Provider], dict[str, Any],
                           list[dict[str, Any]]]:  # fmt: skip
        if self.config.suffix.lower() in (".js", ".cjs", ".mjs", ".ts"):
            self.fail("a JavaScript config cannot be imported: export it as YAML first")
        text = read_text(self.config, what="promptfoo config", max_bytes=MAX_YAML_BYTES)
        data, _ = parse_yaml(text, self.config, core=True)
        if not isinstance(data, dict):
            self.fail("expected a promptfoo config: a mapping with prompts, providers, tests")
        for key in data:
            if key in _READ:
                continue
            why = _WHY.get(str(key), "llmops has no equivalent")
            self.skip(str(key), f"not imported ({why})")
        prompts = self.prompts(data.get("prompts"))
        if not prompts:
            skipped = [n for n in self.notices if n.startswith("prompts")]
            if skipped:
                self.fail(f"no prompt could be imported: {skipped[0]}")
            self.fail("no prompts: a promptfoo config needs 'prompts'")
        providers = self.providers(data.get("providers", data.get("targets")))
        default = self.default_test(data.get("defaultTest"))
        cases = defaults_apart(self.tests(data.get("tests"), default), default)
        return data, prompts, providers, default, cases

    # -- prompts --------------------------------------------------------------------------

    def prompts(self, raw: Any) -> list[_Prompt]:
        if raw is None or raw == [] or raw == "" or raw == {}:
            return []
        if isinstance(raw, str):
            items: list[tuple[str, Any]] = [("prompts", raw)]
        elif isinstance(raw, list):
            items = [(f"prompts[{i}]", item) for i, item in enumerate(raw)]
        elif isinstance(raw, dict):  # {file://path: label}
            items = [(f"prompts.{key}", {"raw": key, "label": label}) for key, label in raw.items()]
        else:
            self.fail("prompts: expected a string, a list or a mapping")
        found: list[_Prompt] = []
        for where, item in items:
            label = ""
            config: dict[str, Any] = {}
            if isinstance(item, dict):
                source = item.get("raw", item.get("id"))
                label = str(item.get("label") or "")
                if isinstance(item.get("config"), dict):
                    config = item["config"]
                for key in item:
                    if key not in ("raw", "id", "label", "config"):
                        self.skip(f"{where}.{key}", "not imported (llmops has no equivalent)")
            else:
                source = item
            if not isinstance(source, str) or not source.strip():
                self.skip(where, "not a prompt text or file; skipped")
                continue
            for number, (suffix, body) in enumerate(self.prompt_bodies(source, where)):
                name = label or suffix or ""
                if label and number:
                    name = f"{label}-{number + 1}"
                found.append(_Prompt(name, where, body, config))
        return found

    def prompt_bodies(self, source: str, where: str) -> list[tuple[str, dict[str, Any]]]:
        """(a name, the prompt file body) for each prompt of one ``prompts`` entry."""
        text = source.strip()
        is_file = text.startswith("file://") or (
            "\n" not in text
            and " " not in text
            and re.search(r"\.(txt|json|jsonl|ya?ml|md|j2|py|js|ts|csv)(:\w+)?$", text)
        )
        if text.startswith("exec:"):
            self.skip(where, "an executable prompt cannot be imported; skipped")
            return []
        if not is_file:
            return [("", self.prompt_body(source, where))]
        reference = text.removeprefix("file://")
        target, _, _function = (
            reference.partition(":")
            if ".py:" in reference or (re.search(r"\.[cm]?[jt]s:", reference))
            else (reference, "", "")
        )
        if re.search(r"\.([cm]?[jt]s|py)$", target):
            self.skip(where, f"a prompt function ({reference}) cannot be imported; skipped")
            return []
        paths = self.glob(target)
        if not paths:
            self.fail(f"{where}: no prompt files match {reference}")
        bodies: list[tuple[str, dict[str, Any]]] = []
        for path in paths:
            stem = path.stem
            suffix = path.suffix.lower()
            if suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
                self.skip(where, f"a prompt function ({path.name}) cannot be imported; skipped")
                continue
            content = self.read(path, "prompt file")
            if suffix == ".json":
                bodies.append(
                    (stem, self.prompt_body(content, f"{where} ({path.name})", chat=True))
                )
            elif suffix == ".jsonl":
                lines = [line for line in content.splitlines() if line.strip()]
                for index, line in enumerate(lines):
                    name = stem if len(lines) == 1 else f"{stem}-{index + 1}"
                    at = f"{where} ({path.name}:{index + 1})"
                    bodies.append((name, self.prompt_body(line, at, chat=True)))
            elif suffix in (".yaml", ".yml"):
                data, _ = parse_yaml(content, path, core=True)
                if isinstance(data, dict) and isinstance(data.get("messages"), list):
                    system = data.get("system")  # {system, messages}: Anthropic's shape
                    data = [
                        *([{"role": "system", "content": system}] if system else []),
                        *data["messages"],
                    ]
                messages = messages_from(data)
                if messages is None:
                    self.fail(f"{where}: expected a list of chat messages", file=path)
                bodies.append((stem, self.chat_body(messages, f"{where} ({path.name})")))
            elif suffix == ".csv":
                self.skip(where, f"prompts from a CSV file ({path.name}) are not imported")
            else:  # .txt, .md, .j2 and others: text, several separated by '---' lines
                parts = _split_prompts(content) if suffix == ".txt" else [content.strip()]
                for index, part in enumerate(parts):
                    name = stem if len(parts) == 1 else f"{stem}-{index + 1}"
                    at = f"{where} ({path.name} prompt {index + 1})" if len(parts) > 1 else where
                    bodies.append((name, self.prompt_body(part, at)))
        return [(name, body) for name, body in bodies if body]

    def prompt_body(self, text: str, where: str, chat: bool = False) -> dict[str, Any]:
        messages = chat_messages(text)
        if messages is not None:
            return self.chat_body(messages, where)
        if chat:
            self.notes.append(f"{where}: not a JSON list of chat messages; imported as text")
        converted, problems = nunjucks_to_jinja(text.strip())
        for problem in problems:
            self.skip(where, f"the prompt {problem}; written as is: fix it before running")
        return {"template": converted}

    def chat_body(self, messages: list[dict[str, Any]], where: str) -> dict[str, Any]:
        out = []
        for index, message in enumerate(messages):
            at = f"{where} message {index + 1}"
            role, content = message["role"], message["content"]
            if role not in ROLES:
                self.skip(at, f"role {role!r} is not one llmops sends ({', '.join(ROLES)}); "
                              "message skipped")  # fmt: skip
                continue
            if isinstance(content, list):
                content = self.text_parts(content, at)
            if not isinstance(content, str):
                self.skip(at, "content that is not text (images, tool calls) is not imported")
                continue
            converted, problems = nunjucks_to_jinja(content)
            for problem in problems:
                self.skip(at, f"the message {problem}; written as is: fix it before running")
            out.append({"role": role, "content": converted})
        if not out:
            self.skip(where, "no message left to import; prompt skipped")
            return {}
        return {"messages": out}

    def text_parts(self, parts: list[Any], where: str) -> str | None:
        """The text of content given as parts (``[{type: text, text: ...}]``), joined by
        blank lines; None when a part is not text (an image, a file)."""
        texts = []
        for part in parts:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                if not isinstance(part.get("text"), str):
                    return None
                texts.append(part["text"])
                if "cache_control" in part:
                    self.notes.append(
                        f"{where}: cache_control is not imported (litellm's prompt caching "
                        "settings go in the prompt's params)"
                    )
            else:
                return None
        return "\n\n".join(text.strip("\n") for text in texts)

    # -- providers ------------------------------------------------------------------------

    def providers(self, raw: Any) -> list[_Provider]:
        if raw is None:
            self.skip("providers", "none given: set 'model:' in the prompt files")
            return []
        items = raw if isinstance(raw, list) else [raw]
        found: list[_Provider] = []
        for index, item in enumerate(items):
            where = f"providers[{index}]" if isinstance(raw, list) else "providers"
            config: Any = {}
            label = None
            if isinstance(item, str):
                provider_id = item
            elif isinstance(item, dict) and isinstance(item.get("id"), str):
                provider_id = item["id"]
                config = item.get("config") or {}
                if isinstance(item.get("label"), str) and item["label"].strip():
                    label = item["label"].strip()[:200]
                for key in item:
                    if key not in ("id", "config", "label"):
                        self.skip(f"{where}.{key}", "not imported (llmops has no equivalent)")
            elif isinstance(item, dict) and len(item) == 1:  # {"openai:gpt-4o": {config}}
                provider_id, options = next(iter(item.items()))
                options = options if isinstance(options, dict) else {}
                provider_id = str(options.get("id") or provider_id)
                config = options.get("config") or {}
            else:
                self.skip(where, "not a provider id or {id, config}; skipped")
                continue
            model, why = litellm_model(provider_id)
            if model is None:
                self.skip(where, f"{provider_id!r} {why}; skipped")
                continue
            params = self.params(config, f"{where}.config")
            found.append(_Provider(model, where, params, label))
        return found

    def params(self, config: Any, where: str) -> dict[str, Any]:
        if not isinstance(config, dict):
            if config:
                self.skip(where, "not a mapping; not imported")
            return {}
        params: dict[str, Any] = {}
        for key, value in config.items():
            if key == "generationConfig" and isinstance(value, dict):
                params.update(self.params(value, f"{where}.{key}"))
                continue
            name = _RENAMED.get(str(key), str(key))
            if name not in _PARAMS:
                self.skip(f"{where}.{key}", _CONNECTION.get(name, _NOT_A_PARAM))
                continue
            if isinstance(value, str) and value.startswith("file://"):
                try:
                    value = self.data_file(self.path(value), "provider config file")
                except ConfigFileError as exc:
                    self.skip(f"{where}.{key}", f"{exc}; not imported")
                    continue
            if name in _LEGACY_FUNCTIONS:  # OpenAI's functions, as the tools they became
                name, value = _LEGACY_FUNCTIONS[name](value)
                self.notes.append(f"{where}.{key}: written as `{name}` (OpenAI's newer form)")
            params[name] = value
        return params

    # -- tests ----------------------------------------------------------------------------

    def default_test(self, raw: Any) -> dict[str, Any]:
        default: dict[str, Any] = {"vars": {}, "assert": [], "metadata": {}}
        if raw is None:
            return default
        where = "defaultTest"
        if isinstance(raw, str) and raw.startswith("file://"):
            raw = self.data_file(self.path(raw), "defaultTest file")
        if not isinstance(raw, dict):
            self.skip(where, "not a mapping; not imported")
            return default
        for key, value in raw.items():
            at = f"{where}.{key}"
            if key == "vars":
                combos = self.vars(value, at)
                if len(combos) > 1:
                    self.skip(at, "a list of values in defaultTest vars is not expanded; "
                                  "the first value is used")  # fmt: skip
                default["vars"] = combos[0] if combos else {}
            elif key == "assert":
                default["assert"] = self.assertions(value, at, judge=None)
            elif key == "options":
                default["judge"], default["transformed"] = self.options(value, at)
            elif key == "threshold":
                default["threshold"] = self.threshold(value, at)
            elif key == "metadata" and isinstance(value, dict):
                default["metadata"] = value
            else:
                self.skip(at, "not imported (llmops has no equivalent)")
        if default.get("transformed"):
            default["assert"] = self.untransformed(default["assert"], f"{where}.assert")
        return default

    def options(self, options: Any, where: str) -> tuple[str | None, bool]:
        """The judge of ``options.provider``, and whether a transform was left out (the
        assertions it feeds would check another text); every other option is reported."""
        judge = None
        transformed = False
        if not isinstance(options, dict):
            return None, False
        for key, value in options.items():
            at = f"{where}.{key}"
            if key == "provider":
                judge = self.judge(value, at)
            elif key in ("transform", "postprocess"):
                self.skip(at, _JS_TRANSFORM)
                transformed = True
            else:
                self.skip(at, "not imported (llmops has no equivalent)")
        return judge, transformed

    def untransformed(self, assertions: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
        """None of ``assertions``, each reported: they check the output of a transform that
        was not imported, and would check the model's raw text instead."""
        for index, _ in enumerate(assertions):
            self.skip(f"{where}[{index}]", "checks the output of a transform that is not "
                                            "imported (see above); skipped")  # fmt: skip
        return []

    def judge(self, value: Any, where: str) -> str | None:
        provider_id = value.get("id") if isinstance(value, dict) else value
        if isinstance(value, dict) and ("text" in value or "embedding" in value):
            text = value.get("text")  # {text: id or {id}, embedding: id or {id}}
            provider_id = text.get("id") if isinstance(text, dict) else text
            if "embedding" in value:
                self.embedding(value["embedding"], f"{where}.embedding")
            if text is None:
                return None
        if not isinstance(provider_id, str):
            self.skip(where, "not a provider id; the suite's judge is used")
            return None
        model, why = litellm_model(provider_id)
        if model is None:
            self.skip(where, f"judge {provider_id!r} {why}; the suite's judge is used")
            return None
        if isinstance(value, dict) and value.get("config"):
            self.skip(f"{where}.config", "judge settings are not imported (llmops judges at "
                                         "temperature 0)")  # fmt: skip
        return model

    def embedding(self, value: Any, where: str) -> None:
        """The suite's ``embedder`` from a grading provider's ``embedding``."""
        provider_id = value.get("id") if isinstance(value, dict) else value
        prefix, _, rest = str(provider_id).partition(":")
        mode, _, model = rest.partition(":")
        if mode in ("embedding", "embeddings") and model:
            rest = model
        embedder, _ = litellm_model(f"{prefix}:{rest}") if rest else (None, "")
        if not isinstance(provider_id, str) or embedder is None:
            self.skip(where, "not an embedding model llmops can call; the suite's embedder "
                             "is used")  # fmt: skip
        elif self.embedder not in (None, embedder):
            self.skip(where, f"a second embedding model; llmops uses one, {self.embedder}")
        else:
            self.embedder = embedder

    def threshold(self, value: Any, where: str) -> float | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and 0 <= value <= 1)
        ):
            self.skip(where, f"threshold {value!r} is not a score from 0 to 1; not imported")
            return None
        return float(value)

    def tests(self, raw: Any, default: dict[str, Any]) -> list[dict[str, Any]]:
        if raw is None:
            self.notes.append("tests: none given; one case without variables")
            return [{"vars": {}}]
        entries: list[tuple[str, Any]]
        if isinstance(raw, str | dict) and not (isinstance(raw, dict) and "path" not in raw):
            entries = [("tests", raw)]
        elif isinstance(raw, list):
            entries = [(f"tests[{i}]", item) for i, item in enumerate(raw)]
        else:
            self.fail("tests: expected a list of tests, a file or a list of files")
        cases: list[dict[str, Any]] = []
        for where, entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                if entry.get("config"):
                    self.skip(f"{where}.config", "not imported (llmops has no equivalent)")
                entry = entry["path"]
            if isinstance(entry, str):
                cases += self.test_files(entry, where, default)
            elif isinstance(entry, dict):
                cases += self.test(entry, where, default)
            else:
                self.skip(where, "not a test or a tests file; skipped")
        return cases

    def test_files(
        self, reference: str, where: str, default: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = reference.strip()
        if re.match(r"[a-z]+://", text) and not text.startswith("file://"):
            self.skip(where, f"remote tests ({text.split('://')[0]}://) are not imported")
            return []
        target = text.removeprefix("file://")
        if re.search(r"\.(py|[cm]?[jt]s)(:\w+)?$", target) or re.search(r"\.xlsx?(#.*)?$", target):
            self.skip(where, f"generated or spreadsheet tests ({target}) are not imported")
            return []
        paths = self.glob(target)
        if not paths:
            self.fail(f"{where}: no tests files match {target}")
        cases: list[dict[str, Any]] = []
        for path in paths:
            name = os.path.relpath(path, self.base)
            suffix = path.suffix.lower()
            if suffix == ".csv":
                cases += self.csv_tests(path, name, default)
            elif suffix == ".jsonl":
                for number, line in enumerate(self.read(path, "tests file").splitlines(), 1):
                    if line.strip():
                        item = parse_json(line, path, line=number)
                        cases += self.test(item, f"{name}:{number}", default)
            elif suffix in (".json", ".yaml", ".yml"):
                data = self.data_file(path, "tests file")
                items = data if isinstance(data, list) else [data]
                for index, item in enumerate(items):
                    cases += self.test(item, f"{name}[{index}]", default)
            else:
                self.fail(f"{where}: {name}: tests files are .csv, .json, .jsonl or .yaml")
        return cases

    def csv_tests(self, path: Path, name: str, default: dict[str, Any]) -> list[dict[str, Any]]:
        """CSV rows read with llmops' own promptfoo CSV reader (``suite._csv_case``); a cell
        or column it would refuse is reported and left out instead."""
        text = self.read(path, "tests file")
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA, restval="")
        cases: list[dict[str, Any]] = []
        reported: set[str] = set()
        try:
            for row in reader:
                line = reader.line_num
                if _EXTRA in row:
                    self.fail("more values than the header has columns", file=path, line=line)
                plain: dict[str, str] = {}
                kept: dict[str, str] = {}
                for raw_key, value in row.items():
                    key = (raw_key or "").strip()
                    if _EXPECTED.fullmatch(key) and value.strip():
                        try:
                            suite_format.assertion_from_text(value, key, _refuse)
                        except _Refused as exc:
                            self.skip(f"{name}:{line} column {key}", f"{exc}; skipped")
                            continue
                    elif key.startswith("__") and not _HANDLED.match(key):
                        if key not in reported:
                            reported.add(key)
                            self.skip(f"{name} column {key}", "not supported by llmops; skipped")
                        continue
                    elif _SINGLE_UNDERSCORE.match(key):  # promptfoo reads it as a variable
                        plain[key] = value
                        continue
                    kept[raw_key] = value
                case = suite_format._csv_case(kept, str(path), line)
                case["vars"].update(plain)
                test = {k: v for k, v in case.items() if k != "id"}
                if case.get("id"):
                    test["description"] = test.get("description") or case["id"]
                cases += self.test(test, f"{name}:{line}", default)
        except csv.Error as exc:
            self.fail(f"invalid CSV: {exc}", file=path, line=reader.line_num)
        return cases

    def test(self, test: Any, where: str, default: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(test, dict):
            self.skip(where, "not a test (a mapping); skipped")
            return []
        judge, transformed = None, bool(default.get("transformed"))
        if "options" in test:
            judge, own = self.options(test["options"], f"{where}.options")
            transformed = transformed or own
        case: dict[str, Any] = {}
        description = test.get("description")
        if description is not None:
            case["description"] = str(description)
        assertions = self.assertions(test.get("assert"), f"{where}.assert", judge)
        if transformed:
            assertions = self.untransformed(assertions, f"{where}.assert")
            if default["assert"] and not default.get("transformed"):
                # defaultTest's assertions check this test's transformed output in
                # promptfoo: skipped for this test (see defaults_apart)
                self.untransformed(default["assert"], f"{where} (defaultTest.assert)")
                case[_NO_DEFAULT_ASSERT] = True
        threshold = (
            self.threshold(test["threshold"], f"{where}.threshold")
            if "threshold" in test
            else default.get("threshold")
        )
        metadata = {**default["metadata"], **(test.get("metadata") or {})}
        for key in test:
            if key not in ("description", "vars", "assert", "threshold", "metadata", "options"):
                why = {
                    "provider": "a per-test provider is not supported; the suite's models run it",
                    "providerOutput": "a fixed output is not supported; the model is called",
                    "prompts": "tests run every prompt of the suite",
                    "providers": "tests run every model of the suite",
                }.get(str(key), "not imported (llmops has no equivalent)")
                self.skip(f"{where}.{key}", why)
        combos = self.vars(test.get("vars"), f"{where}.vars")
        out = []
        for combo in combos:
            item = dict(case)
            if combo:
                item["vars"] = combo
            if assertions:
                item["assert"] = assertions
            if threshold is not None:
                item["threshold"] = threshold
            if metadata:
                item["metadata"] = metadata
            out.append(item)
        return out

    # -- vars -------------------------------------------------------------------------------

    def vars(self, raw: Any, where: str) -> list[dict[str, Any]]:
        """The variables of a test, one mapping per combination: promptfoo runs a test
        once per value of a variable given as a list of strings (or a ``file://`` glob)."""
        if raw is None:
            return [{}]
        if isinstance(raw, str) or (isinstance(raw, list) and all(isinstance(v, str) for v in raw)):
            merged: dict[str, Any] = {}
            for reference in [raw] if isinstance(raw, str) else raw:
                for path in self.glob(reference):
                    data = self.data_file(path, "vars file")
                    if not isinstance(data, dict):
                        self.fail(f"{where}: expected a mapping of variables", file=path)
                    merged.update(data)
            raw = merged
        if not isinstance(raw, dict):
            self.skip(where, "not a mapping of variables; not imported")
            return [{}]
        combos: list[dict[str, Any]] = [{}]
        for key, value in raw.items():
            values = self.var(str(key), value, f"{where}.{key}")
            combos = [{**combo, str(key): v} for combo in combos for v in values]
        return combos

    def var(self, name: str, value: Any, where: str) -> list[Any]:
        if isinstance(value, str) and value.startswith("file://"):
            paths = self.glob(value)
            if not paths:
                self.fail(f"{where}: no files match {value}")
            return [self.var_file(path, value, where) for path in paths]
        if isinstance(value, list) and value and isinstance(value[0], str):
            return [self.var(name, v, where)[0] for v in value]
        if isinstance(value, str):
            return [value.removesuffix("\n")]
        return [value]

    def var_file(self, path: Path, value: str, where: str) -> Any:
        suffix = path.suffix.lower()
        if suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
            self.skip(where, f"a variable computed by {path.name} is not supported; the case "
                             "keeps the file name as its value")  # fmt: skip
            return value
        if suffix in (".yaml", ".yml"):  # promptfoo passes YAML as compact JSON text
            data = self.data_file(path, "vars file")
            return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            return self.read(path, "vars file").strip()
        except ConfigFileError as exc:
            if "not a text file" not in str(exc):
                raise
            self.skip(where, f"{path.name} is not text (images, PDFs are not imported); the "
                             "case keeps the file name as its value")  # fmt: skip
            return value

    # -- assertions ---------------------------------------------------------------------------

    def assertions(self, raw: Any, where: str, judge: str | None) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.skip(where, "not a list of assertions; not imported")
            return []
        found = []
        for index, item in enumerate(raw):
            at = f"{where}[{index}]"
            try:
                found.append(self.assertion(item, at, judge))
            except _Refused as exc:
                self.skip(at, f"{exc}; skipped")
        return found

    def assertion(self, item: Any, where: str, judge: str | None) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise _Refused("not an assertion (a mapping with a type)")
        kind = item["type"].strip()
        base = kind.removeprefix("not-")
        supported = _supported_types()
        if base not in supported:
            raise _Refused(f"type {kind!r} is not supported by llmops")
        if "transform" in item:
            raise _Refused(_JS_TRANSFORM)
        if "contextTransform" in item:
            raise _Refused("contextTransform is JavaScript; llmops reads the context from the "
                           "case's `context` variable")  # fmt: skip
        out: dict[str, Any] = {"type": kind}
        if base == "assert-set":
            children = self.assertions(item.get("assert"), f"{where}.assert", judge)
            if not children:
                raise _Refused("assert-set with no assertion llmops supports")
            out["assert"] = children
        if "value" in item and base != "assert-set":
            value = self.assertion_value(base, item["value"], where)
            if base == "javascript" and isinstance(value, str) and _reads_fields(value):
                value = _STRUCTURED + function_body(value)
                self.notes.append(
                    f"{where}: reads fields of `output`: promptfoo hands it tool calls and "
                    "JSON outputs as objects, llmops the text: the check now starts from the "
                    "call's tool calls, or its text parsed as JSON"
                )
            if value is not None:
                out["value"] = value
        for key in ("threshold", "weight"):
            if key in item:
                number = item[key]
                if isinstance(number, bool) or not isinstance(number, int | float):
                    raise _Refused(f"{key} {number!r} is not a number")
                out[key] = number
        if item.get("metric") is not None:
            out["metric"] = str(item["metric"])
        provider = (
            self.judge(item["provider"], f"{where}.provider") if "provider" in item else judge
        )
        if provider and base in _JUDGED:
            out["provider"] = provider
        if isinstance(item.get("config"), dict):
            out["config"] = item["config"]
        for key in item:
            if key not in (*_ASSERTION_KEYS, "transform", "contextTransform"):
                self.skip(f"{where}.{key}", "not imported (llmops has no equivalent)")
        self.check(out, where)
        return out

    def assertion_value(self, base: str, value: Any, where: str) -> Any:
        if isinstance(value, str) and value.strip().startswith("file://"):
            reference = value.strip().removeprefix("file://")
            target, _, function = reference.partition(":")
            if base in _SCRIPT_TYPES:
                path = self.path(target)
                if not path.is_file():
                    raise _Refused(f"no file {path}")
                relative = os.path.relpath(path.resolve(), self.suite_dir.resolve())
                return f"file://{Path(relative).as_posix()}" + (f":{function}" if function else "")
            path = self.path(reference)
            if path.suffix.lower() in (".json", ".yaml", ".yml"):
                return self.data_file(path, "assertion value file")
            return self.read(path, "assertion value file").strip()
        if base in _SPLIT_TYPES and isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, str):
            converted, problems = nunjucks_to_jinja(value)
            if problems:
                raise _Refused(f"the value {problems[0]}")
            return converted
        return value

    def check(self, assertion: dict[str, Any], where: str) -> None:
        """Refuse what the suite loader would (a bad regex or schema, a wrong value)."""
        try:
            model = suite_format.Assertion.model_validate(assertion)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise _Refused(str(error["msg"]).removeprefix("Value error, ")) from None
        problem = suite_format.assertion_problem(_no_scripts(model), None)
        if problem:
            raise _Refused(problem)


def _no_scripts(assertion: suite_format.Assertion) -> suite_format.Assertion:
    """The assertion with python and javascript checks left out: they are checked when the
    suite loads; the importer runs no code of the config's."""
    if assertion.assert_:
        children = [_no_scripts(a) for a in assertion.assert_ if a.base_type not in _SCRIPT_TYPES]
        if not children:
            children = [_ANY_CHECK]
        return assertion.model_copy(update={"assert_": children})
    if assertion.base_type in _SCRIPT_TYPES:
        return _ANY_CHECK
    return assertion


_ANY_CHECK = suite_format.Assertion(type="contains", value="x")
"""A check the suite loader accepts, in place of a script the importer does not run."""


# JavaScript's string properties and methods: `output.NAME` with another NAME, or
# `output[...]`, reads a structured output (promptfoo parses JSON outputs of models asked
# for a JSON schema, and passes tool calls as objects)
_STRING_MEMBERS = (
    "length|includes|startsWith|endsWith|match|matchAll|toLowerCase|toUpperCase|trim|"
    "trimStart|trimEnd|split|indexOf|lastIndexOf|slice|substring|substr|replace|replaceAll|"
    "search|charAt|charCodeAt|codePointAt|at|padStart|padEnd|localeCompare|normalize|concat|"
    "repeat|toString|valueOf|toLocaleLowerCase|toLocaleUpperCase"
)
_FIELD_READ = re.compile(
    rf"\boutput\s*(?:\??\.\s*(?!(?:{_STRING_MEMBERS})\b)[A-Za-z_$]|\[)|typeof\s+output\b"
)
_STRUCTURED = (
    "if (!String(output).trim() && (context.tool_calls || []).length) {\n"
    "  output = context.tool_calls;\n"
    "} else try { output = JSON.parse(output); } catch (e) {}\n"
)


def _reads_fields(code: str) -> bool:
    """Whether inline JavaScript reads ``output`` as an object rather than as text."""
    return not code.startswith("file://") and _FIELD_READ.search(code) is not None


def _refuse(message: str) -> NoReturn:
    """``assertion_from_text``'s refusal of a promptfoo type llmops lacks, as a notice."""
    match = re.search(r"is promptfoo's '([^']+)' assertion", message)
    if match:
        raise _Refused(f"type {match.group(1)!r} is not supported by llmops")
    raise _Refused(message.split(": ", 1)[1] if message.startswith("column ") else message)


_EXTRA = "\x00extra"
_EXPECTED = re.compile(r"__expected(?:[1-9][0-9]*)?")
_HANDLED = re.compile(
    r"__(?:expected(?:[1-9][0-9]*)?|description|metric|threshold)$|__metadata:.|__config:"
)
_SINGLE_UNDERSCORE = re.compile(
    r"_(?:expected|prefix|suffix|description|providerOutput|metric|threshold|metadata|config)"
)


def _supported_types() -> tuple[str, ...]:
    """The assertion types llmops supports now (others are being added)."""
    return tuple(suite_format.ASSERTION_TYPES)


def _split_prompts(text: str, delimiter: str = "---") -> list[str]:
    """A text file's prompts, separated by lines holding only ``---`` (as promptfoo)."""
    prompts: list[str] = []
    buffer: list[str] = []
    for line in re.split(r"\r?\n", text):
        if line.strip() == delimiter:
            if "\n".join(buffer).strip():
                prompts.append("\n".join(buffer).strip())
            buffer = []
        else:
            buffer.append(line)
    if "\n".join(buffer).strip():
        prompts.append("\n".join(buffer).strip())
    return prompts


# -- output --------------------------------------------------------------------------------


def import_config(
    config: Path, *, out: Path | None = None, prompts_dir: Path = Path("prompts")
) -> ImportResult:
    """Read a promptfoo config and build the prompt files and suites it becomes (not
    written). Bad input (a missing, binary or non-YAML file, a YAML bomb, no prompts) is a
    :class:`~llmops.errors.ConfigFileError`."""
    importer = _Importer(config, out, prompts_dir)
    name = slug(out.stem) if out is not None else ""
    suite_dir = importer.suite_dir
    data, prompts, providers, default, cases = importer.run()
    if not name:
        name = slug(str(data.get("description") or "")) or slug(_config_name(config)) or "imported"
    result = ImportResult(config=config)

    # prompt files: one per prompt; with several, in a folder named after the suite
    names: list[str] = []
    if len(prompts) == 1:
        names = [name]
    else:
        used: set[str] = set()
        for index, prompt in enumerate(prompts):
            base = slug(prompt.label, 32) or f"prompt-{index + 1}"
            candidate, n = base, 2
            while candidate in used:
                candidate, n = f"{base}-{n}", n + 1
            used.add(candidate)
            names.append(f"{name}/{candidate}")

    models = list(dict.fromkeys(p.model for p in providers))
    result.models = models
    entries, base_params = _model_entries(providers)

    # vars a prompt uses that some case does not give render empty in promptfoo
    all_vars = [{**default["vars"], **case.get("vars", {})} for case in cases]
    suite_text_cases = _case_ids(cases)
    config_name = config.as_posix()
    suite_paths: list[Path] = []
    for prompt, prompt_name in zip(prompts, names, strict=True):
        body: dict[str, Any] = {
            "description": f"Imported from promptfoo ({config.name}, {prompt.where})"
            + (f": {prompt.label}" if prompt.label else "")
        }
        if models:
            body["model"] = models[0]
        params = {**base_params, **importer.params(prompt.config, f"{prompt.where}.config")}
        if params:
            body["params"] = params
        optional = _optional_vars(prompt.body, all_vars)
        if optional:
            body["input_schema"] = {
                "type": "object",
                "properties": {v: {"default": ""} for v in optional},
            }
            importer.notes.append(
                f"{prompt.where}: {', '.join(optional)} not given by every test: they default "
                "to '' (promptfoo renders a missing variable empty)"
            )
        body.update(prompt.body)
        path = prompts_dir / f"{prompt_name}.yaml"
        header = (
            f"# Imported from promptfoo config {config_name} ({prompt.where})\n"
            "# by `llmops eval import promptfoo`.\n"
        )
        result.files[path] = header + _yaml_out.dump(body)
        result.prompt_files.append(path)
        if len(prompts) == 1:
            suite_paths.append(out if out is not None else suite_dir / f"{name}.yaml")
        else:  # one suite per prompt: evals/NAME-LABEL.yaml
            suite_paths.append(suite_dir / f"{name}-{prompt_name.rpartition('/')[2]}.yaml")

    suite: dict[str, Any] = {}
    description = str(data.get("description") or "").strip()
    suite["description"] = description or f"Imported from {config.name}"
    options = data.get("evaluateOptions")
    extra: dict[str, Any] = {}
    if isinstance(options, dict):
        for key, value in options.items():
            if key == "repeat" and isinstance(value, int) and 1 <= value <= 100:
                extra["repeat"] = value
            elif key == "maxConcurrency" and isinstance(value, int) and value >= 1:
                extra["concurrency"] = min(value, 256)
            else:
                importer.skip(f"evaluateOptions.{key}", "not imported (llmops has no equivalent)")
    defaults: dict[str, Any] = {}
    if default["vars"]:
        defaults["vars"] = default["vars"]
    if default["assert"]:
        defaults["assert"] = default["assert"]

    for prompt_name, path in zip(names, suite_paths, strict=True):
        body = {"description": suite["description"], "prompt": prompt_name}
        if len(entries) > 1 or any(isinstance(e, dict) for e in entries):
            body["models"] = entries
        if default.get("judge"):
            body["judge"] = default["judge"]
        if importer.embedder:
            body["embedder"] = importer.embedder
        body.update(extra)
        if defaults:
            body["defaults"] = defaults
        body["cases"] = suite_text_cases
        try:
            suite_format.SuiteFile.model_validate(body)
        except ValidationError as exc:  # a bug of the importer, not of the config
            raise ConfigError(
                f"the imported suite is not valid: {exc.errors()[0]['msg']}"
            ) from None
        result.suite_files.append(path)
        header = _suite_header(config_name, path, prompts_dir, importer.notices, importer.notes)
        result.files[path] = header + _yaml_out.dump(body)
    # order: suites first, then prompts (as read)
    result.files = {p: result.files[p] for p in [*result.suite_files, *result.prompt_files]}
    result.notices = importer.notices
    result.notes = importer.notes
    result.cases = len(cases)
    result.assertions = _count(defaults.get("assert", [])) + sum(
        _count(case.get("assert", [])) for case in cases
    )
    return result


def _suite_header(
    config: str, path: Path, prompts_dir: Path, notices: list[str], notes: list[str]
) -> str:
    where = "" if prompts_dir == Path("prompts") else f" --prompts-dir {prompts_dir.as_posix()}"
    lines = [
        f"# Imported from promptfoo config {config} by `llmops eval import promptfoo`.",
        f"# Check it: llmops eval run {path.as_posix()}{where} --dry-run",
    ]
    if notes:
        lines.append("# Notes (imported, but check these):")
        lines += [f"#   - {_one_line(n)}" for n in notes[:100]]
    if notices:
        lines.append("# Not imported (llmops cannot express these promptfoo items):")
        lines += [f"#   - {_one_line(n)}" for n in notices[:100]]
        if len(notices) > 100:
            lines.append(f"#   ... and {len(notices) - 100} more")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _model_entries(providers: list[_Provider]) -> tuple[list[Any], dict[str, Any]]:
    """The suite's ``models`` and the params the prompt file holds. Providers with the same
    params keep them in the prompt, and are model names unless one has a label; providers
    with params of their own are entries ``{id, params, label}`` (promptfoo runs each with
    its own config), labelled apart where one model is listed twice."""
    if not providers:
        return [], {}
    ids = [p.model for p in providers]
    same = all(p.params == providers[0].params for p in providers)
    if same and not any(p.label for p in providers):
        return list(dict.fromkeys(ids)), providers[0].params
    entries: list[Any] = []
    used: set[str] = set()
    for provider in providers:
        label = provider.label
        if label is None and ids.count(provider.model) > 1:
            label = f"{provider.model} ({provider.where})"
        name = label or provider.model
        candidate, n = name, 2
        while candidate in used:
            candidate, n = f"{name} {n}", n + 1
        used.add(candidate)
        if same and candidate == provider.model:
            entries.append(provider.model)
            continue
        entry: dict[str, Any] = {"id": provider.model}
        if provider.params and not same:
            entry["params"] = provider.params
        if candidate != provider.model:
            entry["label"] = candidate
        entries.append(entry)
    return entries, providers[0].params if same else {}


def _config_name(config: Path) -> str:
    stem = config.stem
    if stem.lower().startswith("promptfooconfig") or stem.lower() in ("config", "promptfoo"):
        return config.resolve().parent.name
    return stem


def _case_ids(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases with ids: the description's slug (or ``case-N``), unique."""
    used: set[str] = set()
    out = []
    for index, case in enumerate(cases):
        base = slug(str(case.get("description") or ""), 40) or f"case-{index + 1}"
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}-{n}", n + 1
        used.add(candidate)
        out.append({"id": candidate, **case})
    return out


def _count(assertions: Iterable[dict[str, Any]]) -> int:
    return sum(1 + _count(a.get("assert") or []) for a in assertions)


def _optional_vars(body: dict[str, Any], all_vars: list[dict[str, Any]]) -> list[str]:
    from jinja2 import TemplateError, meta, nodes

    from llmops.prompts import sandbox

    used: set[str] = set()
    guarded: set[str] = set()  # `x | default(...)`, `x is defined`: fine when x is missing
    texts = [m["content"] for m in body.get("messages", [])] + (
        [body["template"]] if "template" in body else []
    )
    for text in texts:
        try:  # (a template llmops cannot compile was reported: nothing to default)
            tree = sandbox.parse(text)
            used |= meta.find_undeclared_variables(tree)
        except TemplateError:
            continue
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            if node.name in ("default", "d", "defined", "undefined") and isinstance(
                node.node, nodes.Name
            ):
                guarded.add(node.node.name)
    return sorted(v for v in used - guarded if any(v not in given for given in all_vars))


def write_files(result: ImportResult, *, force: bool = False) -> None:
    """Write the files of an import, owner-only (they hold prompts and test data). An
    existing file is an error unless ``force``; every path is checked before any write."""
    for path in result.files:
        if path.exists() and not force:
            raise ConfigFileError("exists: pass --force to overwrite it", file=path)
        check_directory(path.parent, what=f"folder of {path.name}")
        if path.parent.is_dir():
            check_output_file(path, what="imported file")
    for path, text in result.files.items():
        check_directory(path.parent, what=f"folder of {path.name}", create=True)
        write_private(path, text, what="imported file")
