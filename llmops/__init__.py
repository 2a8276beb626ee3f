"""llmops: git-native prompts, recorded model calls, CI evals and a spend dashboard.

The public API is what ``__all__`` lists; everything else may change without notice.
"""

from __future__ import annotations

from pathlib import Path

from llmops.config import Settings
from llmops.errors import (
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
    RenderError,
    SandboxViolationError,
    SchemaOutdatedError,
    UnknownCallError,
    VariableValidationError,
)
from llmops.gateway import (
    AsyncStream,
    Completion,
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

__version__ = "0.1.0"

__all__ = [
    "AsyncStream",
    "Completion",
    "ConfigError",
    "ConfigFileError",
    "DatabaseError",
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
    "RenderError",
    "SandboxViolationError",
    "SchemaOutdatedError",
    "Settings",
    "Stream",
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
    folder = prompts_dir if prompts_dir is not None else Settings.from_env().prompts_dir
    return PromptRegistry(folder).load(ref)
