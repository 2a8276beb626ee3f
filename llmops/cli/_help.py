"""How ``--help`` and usage errors read.

The help is plain text (the Typer app sets ``rich_markup_mode=None``): with Rich markup on,
``[default: ...]`` and ``[env LLMOPS_OFFLINE=1]`` in a help string were taken for markup
tags and vanished, and flags showed a ``<bool>`` placeholder as if they took a value. The
usage line names arguments the usual way, ``NAME VERSION_A [VERSION_B]`` (Typer writes a
required one as ``{name}``), and a command list shows each command's first sentence whole
(click cuts it at about 45 characters).
"""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself
    from typer._click import Context
except ImportError:  # pragma: no cover
    from click import Context  # type: ignore[assignment]


SHORT_HELP = 300
"""Characters of a command's first sentence shown in its group's command list (wrapped)."""


class Command(TyperCommand):
    """A command whose usage line shows ``NAME`` for a required argument and ``[NAME]`` for
    an optional one (``NAME...`` when it takes several)."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(max(limit, SHORT_HELP))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(usage_name(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class Group(TyperGroup):
    """A command group whose command list shows each sub-group's first sentence whole."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(max(limit, SHORT_HELP))


def usage_name(argument: TyperArgument) -> str:
    name = argument.metavar or (argument.name or "ARG").upper()
    if argument.nargs != 1:
        name += "..."
    return name if argument.required else f"[{name}]"


def use_plain_usage(app: typer.Typer) -> None:
    """Make every command of ``app`` and of its sub-apps a :class:`Command` and every
    sub-app a :class:`Group` (unless one asks for another class)."""
    for info in app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = Command
    for group in app.registered_groups:
        if group.cls is None or isinstance(group.cls, DefaultPlaceholder):
            group.cls = Group
        if group.typer_instance is not None:
            use_plain_usage(group.typer_instance)
