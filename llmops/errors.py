"""The one exception tree of llmops.

Every error names what it is about (file and line, prompt, variable), so that a
message alone tells a user where to look. The CLI prints ``str(error)`` and exits
with ``error.exit_code``: 2 for configuration and usage errors.

    LLMOpsError
    ├── ConfigError                 bad configuration or usage (exit code 2)
    │   ├── ConfigFileError         a malformed file (file, line)
    │   │   └── PromptFileError     a malformed prompt or labels file
    │   ├── PromptNotFoundError     no prompt of that name
    │   ├── PromptReferenceError    NAME@ref names no version, label or commit
    │   ├── HistoryUnavailableError history was asked for without git
    │   ├── RenderError             a prompt could not be rendered (prompt)
    │   │   ├── MissingVariableError     a template variable was not given
    │   │   ├── VariableValidationError  a variable fails the input_schema
    │   │   ├── SandboxViolationError    a template reached outside the sandbox
    │   │   └── TemplateLimitError       a template exceeded a render limit (output size,
    │   │                                range size, loop iterations, time, recursion)
    │   ├── SchemaOutdatedError     the database needs `llmops db upgrade`
    │   ├── UnknownCallError        feedback for a call id that was never recorded
    │   └── InvalidFeedbackError    a feedback score that is not a finite number
    ├── BudgetExceededError         a blocking budget refused a call (budget, window, spend)
    ├── ProviderError               a model provider answered with an error (direct route)
    │   ├── ProviderRateLimitError  ... with 429 Too Many Requests
    │   ├── ProviderTimeoutError    ... did not answer within the call's timeout
    │   └── ProviderUnreachableError  ... could not be reached at all
    ├── DatabaseError               the database could not be reached or written
    └── GitError                    git itself failed unexpectedly
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "ConfigFileError",
    "DatabaseError",
    "GitError",
    "HistoryUnavailableError",
    "InvalidFeedbackError",
    "LLMOpsError",
    "MissingVariableError",
    "PromptFileError",
    "PromptNotFoundError",
    "PromptReferenceError",
    "ProviderError",
    "ProviderRateLimitError",
    "ProviderTimeoutError",
    "ProviderUnreachableError",
    "RenderError",
    "SandboxViolationError",
    "SchemaOutdatedError",
    "TemplateLimitError",
    "UnknownCallError",
    "VariableValidationError",
]


class LLMOpsError(Exception):
    """Base class of every error llmops raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LLMOpsError):
    """Bad configuration, bad input files or bad usage; the CLI exits 2."""

    exit_code = 2


class ConfigFileError(ConfigError):
    """A configuration file is malformed; the message names the file and line."""

    def __init__(self, message: str, *, file: str | Path, line: int | None = None) -> None:
        self.file = str(file)
        self.line = line
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {message}")


class PromptFileError(ConfigFileError):
    """A prompt file (or ``labels.yaml``) is malformed."""


class PromptNotFoundError(ConfigError):
    """No prompt file has that name."""

    def __init__(self, message: str, *, prompt: str) -> None:
        self.prompt = prompt
        super().__init__(message)


class PromptReferenceError(ConfigError):
    """``NAME@ref`` names no label, version id or commit of that prompt."""

    def __init__(self, message: str, *, prompt: str, ref: str | None = None) -> None:
        self.prompt = prompt
        self.ref = ref
        super().__init__(message)


class HistoryUnavailableError(ConfigError):
    """Prompt history was asked for, but there is no git (or no repository)."""


class RenderError(ConfigError):
    """A prompt could not be rendered with the variables given."""

    def __init__(self, message: str, *, prompt: str, variable: str | None = None) -> None:
        self.prompt = prompt
        self.variable = variable
        super().__init__(message)


class MissingVariableError(RenderError):
    """A variable the template uses (or the input_schema requires) was not given."""


class VariableValidationError(RenderError):
    """A variable does not satisfy the prompt's ``input_schema``."""


class SandboxViolationError(RenderError):
    """A template tried to reach outside the Jinja2 sandbox."""


class TemplateLimitError(RenderError):
    """A template exceeded a render limit (output size, range size, time, recursion).

    ``limit`` says which: ``"output_size"``, ``"range_size"``, ``"loop_iterations"``,
    ``"time"`` or ``"recursion"``.
    """

    def __init__(self, message: str, *, prompt: str, limit: str) -> None:
        self.limit = limit
        super().__init__(message, prompt=prompt)


class SchemaOutdatedError(ConfigError):
    """The database schema is older (or newer) than this llmops expects."""


class UnknownCallError(ConfigError):
    """Feedback was given for a call id that no gateway recorded."""

    def __init__(self, message: str, *, call_id: str) -> None:
        self.call_id = call_id
        super().__init__(message)


class InvalidFeedbackError(ConfigError):
    """A feedback score is not a finite number, or a field is malformed."""


class DatabaseError(LLMOpsError):
    """The database refused a statement or could not be reached.

    Raised by every engine of :func:`llmops.store.engine.create_engine` in place of the
    SQLAlchemy error, which stays available as ``original`` (and ``__cause__``); ``sqlstate``
    is the database's SQLSTATE code when it gave one (PostgreSQL: class 22 is bad data, 23 a
    violated constraint, 08 a lost connection).
    """

    def __init__(
        self,
        message: str,
        *,
        original: BaseException | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.original = original
        self.sqlstate = sqlstate


class GitError(LLMOpsError):
    """A git command failed in a way that is not the user's input."""


class BudgetExceededError(LLMOpsError):
    """A blocking budget refused a call before the model was called.

    ``budget`` is the budget's name, ``key`` the user/tag/... of an ``each`` budget (else
    None), ``window_start``/``window_end`` its calendar window (UTC), ``spent_usd`` the
    stored spend of the window, ``held_usd`` what calls in flight (in any process) hold,
    ``limit_usd`` the limit and ``needed_usd`` this call's estimate (the most it could cost).
    The refused call is recorded with status ``blocked`` and cost 0.
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        key: str | None,
        window: str,
        window_start: datetime,
        window_end: datetime,
        spent_usd: float,
        held_usd: float,
        limit_usd: float,
        needed_usd: float,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.key = key
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.spent_usd = spent_usd
        self.held_usd = held_usd
        self.limit_usd = limit_usd
        self.needed_usd = needed_usd


class ProviderError(LLMOpsError):
    """A model provider answered a call of the gateway's direct route (an OpenAI-compatible
    upstream called without litellm, see :mod:`llmops.gateway.direct`) with an error.

    ``status_code`` is the provider's HTTP status (502 when it could not be reached, 504
    when it did not answer in time), ``body`` the provider's error body when it sent an
    OpenAI-shaped one (``{"error": {...}}``), ``llm_provider`` the provider. Calls through
    litellm raise litellm's own exceptions instead, unchanged.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: dict[str, object] | None = None,
        llm_provider: str = "openai",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.llm_provider = llm_provider
        self.retry_after = retry_after


class ProviderRateLimitError(ProviderError):
    """The provider refused the call with 429 Too Many Requests (``retry_after`` in s)."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the call's ``timeout`` (status 504)."""


class ProviderUnreachableError(ProviderError):
    """The provider could not be reached: refused or broken connection (status 502)."""
