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
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars say what is happening; theirs are noise here


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


@app.command()
@user_errors
def prune(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    method: Annotated[str, typer.Option(help="magnitude | wanda | sparsegpt")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (a Hugging Face model folder).")],
    sparsity: Annotated[float | None, typer.Option(help="Target global sparsity S in [0, 1).")] = None,
    nm: Annotated[str | None, typer.Option("--nm", help="N:M pattern instead of --sparsity, e.g. 2:4.")] = None,
    allocation: Annotated[str, typer.Option(help="Layer-wise allocation of S: uniform.")] = "uniform",
    group: Annotated[str, typer.Option(help="Magnitude comparison group: row | matrix.")] = "row",
    calib: Annotated[
        str | None,
        typer.Option(help="Calibration source: tiny, gsm8k, text:PATH, jsonl:PATH, prompts:tiny, traces:tiny."),
    ] = None,
    nsamples: Annotated[int, typer.Option(help="Calibration sequences.")] = 128,
    seqlen: Annotated[
        int | None, typer.Option(help="Tokens per calibration sequence (default 128 tiny, else 512).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for calibration sampling.")] = 0,
    device: Annotated[str, typer.Option(help="Compute device for calibration: cpu, cuda, cuda:N.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    sequential: Annotated[bool, typer.Option(help="SparseGPT: prune q,k,v → o → gate,up → down in order.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model folders to run their own code.")] = False,
) -> None:
    """One-shot unstructured pruning (Magnitude, Wanda, SparseGPT; any sparsity or N:M).

    Calibration runs block by block (one block on the device at a time); the realised sparsity is
    checked against the request before anything is written.

    Example: prunescale prune --model tiny-reasoner --method wanda --sparsity 0.5 --out runs/wanda50
    """
    from prunescale.api import prune as run_prune
    from prunescale.config import PruneSpec, validated

    spec = validated(
        PruneSpec,
        model=model,
        method=method,
        sparsity=sparsity,
        nm=nm,
        allocation=allocation,
        group=group,
        calib=calib,
        nsamples=nsamples,
        seqlen=seqlen,
        seed=seed,
        device=device,
        dtype=dtype,
        sequential=sequential,
        out=out_dir,
        overwrite=overwrite,
        trust_remote_code=trust_remote_code,
    )
    run_prune(spec, log=err.print, progress=err.is_terminal)
    out.print(f"pruned model: {out_dir}")


@app.command()
@user_errors
def ppl(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    data: Annotated[
        str | None, typer.Option(help="Text source (default: the model's embedded one, held-out split).")
    ] = None,
    seqlen: Annotated[int | None, typer.Option(help="Tokens per window.")] = None,
    limit: Annotated[int, typer.Option(help="Number of windows.", min=1)] = 64,
    seed: Annotated[int, typer.Option(help="Seed for window sampling.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Perplexity on held-out text — the quick check of a pruned model.

    Example: prunescale ppl --model runs/wanda50 --data tiny --limit 32
    """
    from prunescale.api import ppl as run_ppl

    result = run_ppl(model, data, seqlen, limit, seed, dtype=dtype, device=device)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"perplexity {result['perplexity']:.4f} on {result['tokens']} tokens of {result['data']['source']}")


if __name__ == "__main__":  # pragma: no cover
    app()
