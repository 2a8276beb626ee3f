"""llmops: git-native prompts, recorded model calls, CI evals and a spend dashboard.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.config import Budget, Settings
from llmops.errors import (
    BudgetExceededError,
    ConfigError,
    ConfigFileError,
    DatabaseError,
    GitError,
    HistoryUnavailableError,
    InvalidFeedbackError,
    LLMOpsError,
    MissingVariableError,
    PromptFileError,
    PromptNotFoundError,
    PromptReferenceError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    ProviderUnreachableError,
    RenderError,
    SandboxViolationError,
    SchemaOutdatedError,
    TemplateLimitError,
    UnknownCallError,
    VariableValidationError,
)

if TYPE_CHECKING:
    from llmops.gateway import (
        AsyncStream,
        Completion,
        Embedding,
        Gateway,
        ModelPrice,
        Stream,
        Usage,
        acomplete,
        astream,
        complete,
        default_gateway,
        feedback,
        stream,
    )
    from llmops.prompts import Prompt, PromptRegistry, PromptVersion

# The one place the version is written: pyproject.toml reads it from here (statically,
# without importing llmops), so `llmops --version` and the wheel always agree.
__version__ = "0.1.0"

# The gateway is imported on first use, so that `import llmops` (and every CLI command
# that calls no model) stays fast.
_GATEWAY_NAMES = {
    "AsyncStream", "Completion", "Embedding", "Gateway", "ModelPrice", "Stream", "Usage",
    "acomplete", "astream", "complete", "default_gateway", "feedback", "stream",
}  # fmt: skip


_PROMPT_NAMES = {"Prompt", "PromptRegistry", "PromptVersion"}  # jinja2, jsonschema: lazily too


def __getattr__(name: str) -> Any:
    if name in _GATEWAY_NAMES:
        from llmops import gateway

        return getattr(gateway, name)
    if name in _PROMPT_NAMES:
        from llmops import prompts

        return getattr(prompts, name)
    raise AttributeError(f"module 'llmops' has no attribute {name!r}")


__all__ = [
    "AsyncStream",
    "Budget",
    "BudgetExceededError",
    "Completion",
    "ConfigError",
    "ConfigFileError",
    "DatabaseError",
    "Embedding",
    "Gateway",
    "GitError",
    "HistoryUnavailableError",
    "InvalidFeedbackError",
    "LLMOpsError",
    "MissingVariableError",
    "ModelPrice",
    "Prompt",
    "PromptFileError",
    "PromptNotFoundError",
    "PromptReferenceError",
    "PromptRegistry",
    "PromptVersion",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderTimeoutError",
    "ProviderUnreachableError",
    "RenderError",
    "SandboxViolationError",
    "SchemaOutdatedError",
    "Settings",
    "Stream",
    "TemplateLimitError",
    "UnknownCallError",
    "Usage",
    "VariableValidationError",
    "__version__",
    "acomplete",
    "astream",
    "complete",
    "default_gateway",
    "feedback",
    "load_prompt",
    "stream",
]


def load_prompt(ref: str, *, prompts_dir: str | Path | None = None) -> Prompt:
    """Load a prompt by reference: ``NAME``, ``NAME@label``, ``NAME@version`` or ``NAME@commit``.

    ``prompts_dir`` defaults to ``LLMOPS_PROMPTS_DIR`` or ``./prompts``.
    """
    from llmops.prompts import PromptRegistry

    folder = prompts_dir if prompts_dir is not None else Settings.from_env().prompts_dir
    return PromptRegistry(folder).load(ref)
