"""The ``prunescale`` command line: parses, calls :mod:`prunescale.api`, prints. No logic lives here.

Errors meant for users (:class:`~prunescale.errors.PrunescaleError`, bad options) print one line on
stderr and exit with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from prunescale import __version__
from prunescale.errors import PrunescaleError

app = typer.Typer(
    name="prunescale",
    help="Prune reasoning LLMs and measure how their test-time scaling changes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


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


def _version(value: bool) -> None:
    if value:
        out.print(f"prunescale {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Prune reasoning LLMs (unstructured or layer removal) and measure accuracy vs thinking budget."""
    _state["debug"] = debug


@app.command()
@user_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the models prunescale knows by name, with their local folder when present.

    Any local HF folder, .gguf file or hub id works too; these are just the named ones.

    Example: prunescale models --json
    """
    from prunescale.api import list_models

    rows = list_models()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("name", "params", "source", "path")
    for r in rows:
        params = f"{r['params'] / 1e6:.1f}M" if r["params"] else "?"
        table.add_row(r["name"], params, r["source"], r["path"] or "[dim]not on this machine[/dim]")
    out.print(table)


@app.command()
@user_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report (created).")] = Path("runs/demo"),
    limit: Annotated[int, typer.Option(help="Test items (≥ 1).", min=1)] = 500,
    hard: Annotated[int, typer.Option(help="Hard-split items (more steps than training).", min=1)] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the test items.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report in --out.")] = False,
) -> None:
    """Accuracy vs thinking budget of the embedded tiny reasoner, written as a small report.

    Greedy decoding with budget forcing (the thinking is cut at each budget and the model must answer),
    plus one forced "Wait" and a hard split. Runs offline on a CPU in about a minute.

    Example: prunescale demo --out runs/demo
    """
    from prunescale.api import demo as run_demo

    report = run_demo(out_dir, limit=limit, hard=hard, seed=seed, overwrite=overwrite, log=err.print)
    out.print(f"report: {report}")


if __name__ == "__main__":  # pragma: no cover
    app()
