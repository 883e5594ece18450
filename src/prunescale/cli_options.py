"""What every command of the CLI shares: options generated from the option groups of :mod:`prunescale.config`,
one-line user errors, help that lists the registries, and the two consoles.

A command names the groups it takes (:func:`schema_options`); every field of those groups becomes an
option with the field's help and its default shown, and a field added to a group is an option of every
command that takes the group, with nothing else to edit. The generated options default to None, so only
what the user typed reaches the spec and each spec keeps its own defaults (:func:`pick`).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, Union

import click
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from prunescale.errors import PrunescaleError

F = TypeVar("F", bound=Callable[..., Any])
out = Console()
err = Console(stderr=True)
_state = {"debug": False}
FLAGS = {"source": ("--calib",), "model": ("--model", "-m"), "out": ("--out",)}  # where the flag is not --field-name


def int_list(text: str, what: str) -> list[int]:
    """``"3,7,12"`` → [3, 7, 12], or one line naming the option."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PrunescaleError(f"{what} must be comma-separated integers, got {text!r}") from None


def flags_of(name: str) -> tuple[str, ...]:
    """The flags of field ``name``'s option: ``--field-name`` unless :data:`FLAGS` says otherwise."""
    return FLAGS.get(name, (f"--{name.replace('_', '-')}",))


def flag(name: str) -> str:
    return flags_of(name)[0]


def _base(annotation: Any) -> Any:
    """``int | None`` → int; ``list[int]`` → list (typed as a comma-separated string on the command line)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return list if typing.get_origin(annotation) is list else annotation


def help_of(field: FieldInfo) -> str:
    """The field's description plus its default, as every option shows it."""
    text = field.description or ""
    if field.default is not PydanticUndefined and field.default is not None:
        shown = ("on" if field.default else "off") if isinstance(field.default, bool) else field.default
        text += f" (default {shown})"
    return text


def option(name: str, field: FieldInfo, help_text: str | None = None) -> inspect.Parameter:
    """The keyword parameter typer reads as the option for field ``name``."""
    base = _base(field.annotation)
    flags = flags_of(name)
    if base is bool and field.default is True:
        flags = (f"{flags[0]}/--no-{flags[0].removeprefix('--')}",)
    typ = str if base is list else base
    required = field.is_required()
    annotation = Annotated[typ if required else typ | None,  # type: ignore[operator]
                           typer.Option(*flags, help=help_of(field) if help_text is None else help_text)]
    default = inspect.Parameter.empty if required else None
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def schema_options(*groups: type[BaseModel], exclude: tuple[str, ...] = (),
                   helps: dict[str, str] | None = None) -> Callable[[F], F]:
    """Add an option for every field of ``groups`` (first group first) to a command that takes ``**options``.

    The command's own parameters come first and win over a field of the same name; ``exclude`` leaves
    fields out, ``helps`` replaces a field's help for this command. List fields (budgets, seeds, layers)
    are typed as comma-separated integers and arrive as lists; options the user did not give are absent.
    """
    helps = helps or {}

    def deco(fn: F) -> F:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(fn).parameters.values()
               if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own} | set(exclude)
        generated: dict[str, inspect.Parameter] = {}
        lists: set[str] = set()
        for group in groups:
            for name, field in group.model_fields.items():
                if name in taken or name in generated or isinstance(field.annotation, type) and issubclass(
                        field.annotation, BaseModel):
                    continue
                generated[name] = option(name, field, helps.get(name))
                if _base(field.annotation) is list:
                    lists.add(name)

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            for name in lists & kwargs.keys():
                if kwargs[name] is not None:
                    kwargs[name] = int_list(kwargs[name], flag(name))
            mine = {p.name: kwargs.pop(p.name) for p in own if p.name in kwargs}
            return fn(**mine, **{k: v for k, v in kwargs.items() if v is not None})

        params = own + list(generated.values())
        hints = typing.get_type_hints(fn, include_extras=True)
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params])
        command.__annotations__ = {p.name: p.annotation for p in command.__signature__.parameters.values()}
        return command  # type: ignore[return-value]

    return deco


def pick(options: dict[str, Any], *groups: type[BaseModel], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options that are fields of ``groups`` (what the user typed of them)."""
    names = {n for g in groups for n in g.model_fields} - set(exclude)
    return {k: v for k, v in options.items() if k in names}


class RegistryHelp(TyperCommand):
    """A command whose help fills in the registries' lists (``@methods@`` …, :mod:`prunescale.catalogue`) when
    it is shown, and only then: the registries import torch, which other invocations load when they need it."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from prunescale.catalogue import TOKEN, expand, lists  # heavy: the registries import torch

        table = lists()
        for param in self.params:
            if isinstance(getattr(param, "help", None), str) and TOKEN.search(param.help):
                param.help = expand(param.help, table)
        super().format_help(ctx, formatter)


def say(message: str) -> None:
    """A progress or notice line on stderr, whole (never wrapped) and literal (brackets are not markup)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def show_table(columns: tuple[str, ...], rows: list, title: str | None = None) -> None:
    """A table of ``rows`` (sequences of cells) on stdout."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def set_debug(on: bool) -> None:
    """``--debug``: tracebacks instead of one-line errors."""
    _state["debug"] = on


def user_errors(fn: F) -> F:
    """Turn PrunescaleError into one line on stderr and exit code 2 (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PrunescaleError as exc:
            if _state["debug"]:
                raise
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
