"""Prompts as versioned YAML files in git: format, rendering, history and labels."""

from llmops.prompts._format import Message, PromptFile, version_id
from llmops.prompts._labels import LABELS_FILE, Labels, parse_labels
from llmops.prompts.registry import Prompt, PromptRegistry, PromptVersion, split_ref

__all__ = [
    "LABELS_FILE",
    "Labels",
    "Message",
    "Prompt",
    "PromptFile",
    "PromptRegistry",
    "PromptVersion",
    "parse_labels",
    "split_ref",
    "version_id",
]
