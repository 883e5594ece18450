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


def given(**options: Any) -> dict[str, Any]:
    """Only the options the user set, so each spec keeps its own defaults for the rest."""
    return {k: v for k, v in options.items() if v is not None}


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
    out_dir: Annotated[Path, typer.Option("--out", help="Study folder.")] = Path("runs/demo"),
) -> None:
    """The demo study on the embedded tiny reasoner: prune 12 ways, measure accuracy vs thinking budget.

    Runs examples/demo.yaml (dense; Magnitude and Wanda at 20 % and 50 % with uniform and OWL; SparseGPT 50 %;
    ShortGPT removing 1 and 2 blocks and a parameter-matched 20 %; 7 budgets; 300 test items) offline on a
    CPU, then writes report.md / report.html. Re-running reuses every finished stage.

    Example: prunescale demo --out runs/demo
    """
    from prunescale.study.runner import DEMO_SPEC, run_study

    folder, _ = run_study(DEMO_SPEC, out_dir, log=err.print)
    out.print(f"report: {folder / 'report.md'} (and report.html, results.csv, tts_curves.png)")


@app.command()
@user_errors
def prune(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    method: Annotated[
        str,
        typer.Option(
            help="Unstructured: magnitude | wanda | sparsegpt. Layer removal: shortgpt | angular | "
            "reverse | random | layers | laco."
        ),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (a Hugging Face model folder).")],
    sparsity: Annotated[float | None, typer.Option(help="Target global sparsity S in [0, 1).")] = None,
    nm: Annotated[str | None, typer.Option("--nm", help="N:M pattern instead of --sparsity, e.g. 2:4.")] = None,
    allocation: Annotated[
        str, typer.Option(help="Layer-wise allocation of S: uniform | owl | alpha | layerif | file:PATH.")
    ] = "uniform",
    owl_m: Annotated[float, typer.Option(help="OWL: outlier threshold M (scores > M × mean).")] = 5.0,
    owl_lambda: Annotated[float, typer.Option(help="OWL: sparsity range λ around S.")] = 0.08,
    epsilon: Annotated[float, typer.Option(help="AlphaPruning / LayerIF: ratio range 1 ± ε.")] = 0.3,
    layerif_data: Annotated[
        str | None, typer.Option(help="LayerIF task data source (its train and held-out splits are used).")
    ] = None,
    group: Annotated[str, typer.Option(help="Magnitude comparison group: row | matrix.")] = "row",
    calib: Annotated[
        str | None,
        typer.Option(help="Calibration source: tiny, gsm8k, text:PATH, jsonl:PATH, prompts:tiny, traces:tiny."),
    ] = None,
    nsamples: Annotated[
        int | None, typer.Option(help="Calibration sequences (default 128; 32 for layer scores).")
    ] = None,
    seqlen: Annotated[
        int | None, typer.Option(help="Tokens per calibration sequence (default 128 tiny, else 512).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for calibration sampling.")] = 0,
    device: Annotated[str, typer.Option(help="Compute device for calibration: cpu, cuda, cuda:N.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    sequential: Annotated[
        bool,
        typer.Option(
            help="Wanda: statistics from inputs through already-pruned blocks (--no-sequential: from the dense "
            "model, as OWL's shared pass). SparseGPT: also prune q,k,v → o → gate,up → down in order."
        ),
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model folders to run their own code.")] = False,
    remove_layers: Annotated[int | None, typer.Option(help="Layer removal: number of blocks to remove.")] = None,
    match_sparsity: Annotated[
        float | None, typer.Option(help="Layer removal: remove the block count closest to this parameter fraction.")
    ] = None,
    layers: Annotated[str | None, typer.Option(help="Method 'layers': block indices, e.g. 3,7,12.")] = None,
    keep_last: Annotated[bool, typer.Option(help="Method 'reverse': never remove the last block.")] = False,
    laco_threshold: Annotated[float, typer.Option(help="LaCo: minimum cosine similarity to keep a merge.")] = 0.9,
    laco_span: Annotated[int, typer.Option(help="LaCo: following blocks folded into a block per merge.")] = 1,
) -> None:
    """Prune a model: one-shot unstructured (any sparsity or N:M) or remove whole decoder blocks.

    Unstructured calibration runs block by block (one block on the device at a time) and the realised
    sparsity is checked before anything is written. Layer removal updates the config and every layer
    index, then reloads the saved folder and checks generation before reporting success.

    Examples:
      prunescale prune --model tiny-reasoner --method wanda --sparsity 0.5 --out runs/wanda50
      prunescale prune --model tiny-reasoner --method shortgpt --remove-layers 1 --out runs/short1
    """
    from prunescale.api import prune as run_prune
    from prunescale.api import prune_structured
    from prunescale.config import STRUCTURED, PruneSpec, StructuredSpec, validated

    if method in STRUCTURED:
        try:
            indices = [int(x) for x in layers.split(",")] if layers else None
        except ValueError:
            raise PrunescaleError(f"--layers must be comma-separated integers, got {layers!r}") from None
        if sparsity is not None or nm is not None:
            raise PrunescaleError(f"{method} removes whole blocks: use --remove-layers or --match-sparsity")
        sspec = validated(
            StructuredSpec,
            **given(nsamples=nsamples),
            model=model,
            method=method,
            remove_layers=remove_layers,
            match_sparsity=match_sparsity,
            layers=indices,
            keep_last=keep_last,
            laco_threshold=laco_threshold,
            laco_span=laco_span,
            calib=calib,
            seqlen=seqlen,
            seed=seed,
            device=device,
            dtype=dtype,
            out=out_dir,
            overwrite=overwrite,
            trust_remote_code=trust_remote_code,
        )
        prune_structured(sspec, log=err.print)
        out.print(f"pruned model: {out_dir}")
        return
    if remove_layers is not None or match_sparsity is not None or layers is not None:
        raise PrunescaleError(f"{method} is unstructured: use --sparsity or --nm, not layer-removal options")

    spec = validated(
        PruneSpec,
        **given(nsamples=nsamples),
        model=model,
        method=method,
        sparsity=sparsity,
        nm=nm,
        allocation=allocation,
        owl_m=owl_m,
        owl_lambda=owl_lambda,
        epsilon=epsilon,
        layerif_data=layerif_data,
        group=group,
        calib=calib,
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


@app.command()
@user_errors
def allocation(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    allocation: Annotated[str, typer.Option(help="uniform | owl | alpha | layerif | file:PATH")],
    sparsity: Annotated[float, typer.Option(help="Target global sparsity S in [0, 1).")],
    calib: Annotated[str | None, typer.Option(help="Calibration source (OWL).")] = None,
    nsamples: Annotated[int, typer.Option(help="Calibration sequences (OWL).")] = 32,
    seqlen: Annotated[int | None, typer.Option(help="Tokens per calibration sequence.")] = None,
    owl_m: Annotated[float, typer.Option(help="OWL: outlier threshold M.")] = 5.0,
    owl_lambda: Annotated[float, typer.Option(help="OWL: sparsity range λ.")] = 0.08,
    epsilon: Annotated[float, typer.Option(help="AlphaPruning / LayerIF: ratio range 1 ± ε.")] = 0.3,
    layerif_data: Annotated[
        str | None, typer.Option(help="LayerIF task data source (its train and held-out splits are used).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the per-module mapping).")] = False,
) -> None:
    """Show the per-block sparsity an allocation gives, without pruning.

    Example: prunescale allocation --model tiny-reasoner --allocation alpha --sparsity 0.5
    """
    from prunescale.api import allocation_table

    result = allocation_table(
        model,
        allocation,
        sparsity,
        calib,
        nsamples,
        seqlen,
        owl_m=owl_m,
        owl_lambda=owl_lambda,
        epsilon=epsilon,
        layerif_data=layerif_data,
    )
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    extra = [k for k in result["blocks"][0] if k not in ("block", "sparsity", "params")]
    table = Table("block", "sparsity", "params", *extra, title=f"{allocation} at S={sparsity}")
    for r in result["blocks"]:
        table.add_row(str(r["block"]), f"{r['sparsity']:.4f}", str(r["params"]), *(f"{r[k]:.4g}" for k in extra))
    out.print(table)
    out.print(f"parameter-weighted mean: {result['mean']:.4f}")


@app.command("tune-allocation")
@user_errors
def tune_allocation(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    method: Annotated[str, typer.Option(help="magnitude | wanda | sparsegpt")],
    sparsity: Annotated[float, typer.Option(help="Target global sparsity S in [0, 1).")],
    allocation: Annotated[str, typer.Option(help="owl | alpha | layerif")],
    grid: Annotated[str, typer.Option(help='Knob values, e.g. "m=3,5,7;lambda=0.04,0.08,0.16" or "epsilon=0.1,0.3".')],
    on: Annotated[str, typer.Option(help="Held-out data as SOURCE:validation or SOURCE:heldout (never test).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tuning.json.")],
    calib: Annotated[str | None, typer.Option(help="Calibration source for pruning.")] = None,
    nsamples: Annotated[int | None, typer.Option(help="Calibration sequences.")] = None,
    seqlen: Annotated[int | None, typer.Option(help="Tokens per sequence.")] = None,
    limit: Annotated[int, typer.Option(help="Held-out windows for perplexity.", min=1)] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
) -> None:
    """Choose allocation knobs by held-out perplexity and record the choice (tuning.json).

    Example: prunescale tune-allocation --model tiny-reasoner --method wanda --sparsity 0.5 --allocation owl
    --grid "m=3,5,7;lambda=0.04,0.08" --on tiny:validation --out runs/tune-owl
    """
    from prunescale.api import tune_allocation as run_tune
    from prunescale.config import PruneSpec, validated

    spec = validated(
        PruneSpec,
        **given(nsamples=nsamples),
        model=model,
        method=method,
        sparsity=sparsity,
        allocation=allocation,
        calib=calib,
        seqlen=seqlen,
        out=out_dir,
        overwrite=overwrite,
    )
    result = run_tune(spec, grid, on, limit, log=err.print)
    out.print(f"best {result['best']} (perplexity {result['best_perplexity']:.4f}) → {out_dir / 'tuning.json'}")


@app.command()
@user_errors
def benchmarks(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the benchmarks and where their data comes from (offline package, hub, or generated).

    Example: prunescale benchmarks
    """
    from prunescale.tts.benchmarks import BENCHMARKS, SOURCES

    rows = [{"name": n, "source": SOURCES[n]} for n in BENCHMARKS] + [
        {"name": "jsonl:PATH", "source": "local file: question/answer (+ choices) per line"}
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("benchmark", "source")
    for r in rows:
        table.add_row(r["name"], r["source"])
    out.print(table)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PrunescaleError(f"{what} must be comma-separated integers, got {text!r}") from None


@app.command("eval")
@user_errors
def eval_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    benchmark: Annotated[str, typer.Option(help="tiny | gsm8k | math500 | aime24 | amc23 | gpqa_diamond | jsonl:PATH")],
    budgets: Annotated[str, typer.Option(help="Thinking budgets in tokens, e.g. 0,16,64,256 (0 = no thinking).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder (samples.jsonl, summary.json).")],
    split: Annotated[str, typer.Option(help="Benchmark split.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Use the first K items.")] = None,
    wait: Annotated[int, typer.Option(help="Force K 'Wait' extensions after natural ends.")] = 0,
    min_budget: Annotated[int, typer.Option(help="Extend with 'Wait' until at least B thinking tokens.")] = 0,
    samples: Annotated[int, typer.Option(help="Samples per item and seed (needs --temperature > 0).")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Sample among the K most likely tokens (0 = off; Qwen3's card: 20).")] = 0,
    min_p: Annotated[float, typer.Option(help="Drop tokens below P × the top probability (0 = off).")] = 0.0,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds, e.g. 7,11,42.")] = "0",
    answer_budget: Annotated[int, typer.Option(help="Tokens for the answer after thinking.")] = 64,
    engine: Annotated[str, typer.Option(help="hf | vllm")] = "hf",
    tensor_parallel_size: Annotated[int, typer.Option(help="vllm: GPUs per model (tensor parallel).")] = 1,
    batch_size: Annotated[
        int,
        typer.Option(help="Rows decoded together by the hf engine (one trajectory's answers to all budgets share "
                     "a row); a finished row is replaced by a waiting one."),
    ] = 32,
    dtype: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N")] = "cpu",
    think_open: Annotated[
        str | None,
        typer.Option(help="Override the thinking opener, e.g. '<|im_start|>think' (s1's markers select the whole s1 "
                     "format). Default: the model's family (README: Reasoning models)."),
    ] = None,
    think_close: Annotated[
        str | None, typer.Option(help="Override the thinking closer, e.g. '<|im_start|>answer'.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Variant name recorded in samples.jsonl.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run folder holding a different run.")] = False,
) -> None:
    """Accuracy vs thinking budget with budget forcing (cap, Wait), parallel samples and grading.

    Every budget comes from one thinking trace per (item, seed, sample) cut at that budget (prefix reuse);
    an interrupted run resumes from samples.jsonl.

    Example: prunescale eval --model tiny-reasoner --benchmark tiny --limit 200 --budgets 0,12,24,48,96 --out runs/eval
    """
    from prunescale.api import evaluate
    from prunescale.config import EvalSpec, validated

    spec = validated(
        EvalSpec,
        model=model,
        benchmark=benchmark,
        split=split,
        limit=limit,
        budgets=_int_list(budgets, "--budgets"),
        wait=wait,
        min_budget=min_budget,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        seeds=_int_list(seeds, "--seeds"),
        answer_budget=answer_budget,
        engine=engine,
        tensor_parallel_size=tensor_parallel_size,
        batch_size=batch_size,
        dtype=dtype,
        device=device,
        think_open=think_open,
        think_close=think_close,
        label=label,
        out=out_dir,
        overwrite=overwrite,
    )
    run = evaluate(spec, log=err.print, progress=err.is_terminal)
    summary = json.loads((run / "summary.json").read_text())
    table = Table("budget", "accuracy %", "95 % CI", "mean thinking", "forced end %", title=str(run))
    for b in summary["budgets"]:
        table.add_row(
            str(b["budget"]),
            f"{100 * b['accuracy']:.1f}",
            f"{100 * b['ci95'][0]:.1f}–{100 * b['ci95'][1]:.1f}",
            f"{b['mean_thinking_tokens']:.1f}",
            f"{100 * b['forced_end_rate']:.1f}",
        )
    out.print(table)


@app.command()
@user_errors
def study(
    spec: Annotated[Path, typer.Argument(help="Study YAML (see examples/demo.yaml, examples/paper.yaml).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Study folder (default runs/<name>).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded grid and what is cached.")] = False,
    jobs: Annotated[int, typer.Option(help="Variants run in parallel (local executor).")] = 1,
    executor: Annotated[str, typer.Option(help="local | ray")] = "local",
) -> None:
    """Run a whole pruning × test-time-scaling study from one YAML, resumably, then write the report.

    Each variant is pruned once and each (variant, benchmark) evaluated once; every stage is cached by a
    content hash of its inputs, so re-running reuses finished work and resumes unfinished work.

    Example: prunescale study examples/demo.yaml --out runs/demo
    """
    from prunescale.study.runner import run_study

    folder, rows = run_study(spec, out_dir, dry_run=dry_run, jobs=jobs, executor=executor, log=err.print)
    if dry_run:
        table = Table("variant", "kind", "benchmark", "pruned", "evaluated", title=f"{spec} → {folder}")
        for r in rows:
            table.add_row(r["variant"], r["kind"], r["benchmark"], r["pruned"], r["evaluated"])
        out.print(table)
        return
    out.print(f"results: {folder / 'results.csv'}\nreport: {folder / 'report.md'} and {folder / 'report.html'}")


@app.command()
@user_errors
def report(
    folder: Annotated[Path, typer.Argument(help="A finished study folder.")],
) -> None:
    """Re-write report.md, report.html and the plots of a study folder.

    Example: prunescale report runs/demo
    """
    from prunescale.report.study_report import write_report

    out.print(f"report: {write_report(folder)}")


if __name__ == "__main__":  # pragma: no cover
    app()
