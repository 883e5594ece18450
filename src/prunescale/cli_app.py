"""The ``prunescale`` Typer app and its global options; the commands register on it from :mod:`prunescale.cli`
(model-changing commands) and :mod:`prunescale.cli_study` (evaluation, studies, reports, data)."""

from __future__ import annotations

from typing import Annotated

import typer

from prunescale import __version__
from prunescale.cli_options import out, set_debug

app = typer.Typer(name="prunescale", help="Prune reasoning LLMs and measure how their test-time scaling changes.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


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
    set_debug(debug)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars say what is happening; theirs are noise here
