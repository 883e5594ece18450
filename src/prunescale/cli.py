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

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from prunescale import __version__
from prunescale.config import EvalSpec
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


class RegistryHelp(TyperCommand):
    """A command whose help fills in the registries' lists (``@methods@`` …, :mod:`prunescale.catalogue`) when
    it is shown, and only then: the registries import torch, which other invocations load when they need it."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from prunescale.catalogue import TOKEN, expand, lists

        table = lists()
        for param in self.params:
            if isinstance(getattr(param, "help", None), str) and TOKEN.search(param.help):
                param.help = expand(param.help, table)
        super().format_help(ctx, formatter)


def say(message: str) -> None:
    """A progress or notice line on stderr, whole (never wrapped) and literal (brackets are not markup)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)
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


@app.command(cls=RegistryHelp)
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


@app.command(cls=RegistryHelp)
@user_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Study folder.")] = Path("runs/demo"),
) -> None:
    """The demo study on the embedded tiny reasoner: prune 13 ways, measure accuracy vs thinking budget.

    Runs examples/demo.yaml (dense; Wanda at 20, 50 and 70 % with uniform, OWL and AlphaPruning allocation;
    SparseGPT and Magnitude at 70 %; ShortGPT removing 1 and 2 blocks; 5 budgets; 128 items of the test
    split and of the hard split) offline on a CPU, then writes report.md / report.html with intervals,
    paired tests against dense and the reference study's claims judged. Re-running reuses finished stages.

    Example: prunescale demo --out runs/demo
    """
    from prunescale.study.runner import DEMO_SPEC, run_study

    folder, _ = run_study(DEMO_SPEC, out_dir, log=say)
    out.print(f"report: {folder / 'report.md'} (and report.html, results.csv, tts_curves.png)")


def _field(name: str, spec: Any = None):
    """The schema field an option stands for (every option is declared once, in prunescale.config)."""
    from prunescale.config import AllocationSpec, Calibration, EvalSpec, PruneSpec, StructuredSpec

    for cls in (spec,) if spec is not None else (PruneSpec, StructuredSpec, AllocationSpec, EvalSpec, Calibration):
        if name in cls.model_fields:
            return cls.model_fields[name]
    raise KeyError(name)


def opt(name: str, *flags: str, spec: Any = None, **kw: Any) -> Any:
    """A CLI option for the schema field ``name`` (of ``spec`` where specs differ): its help is the field's
    description plus its default. The option itself defaults to None, so only what the user typed reaches
    the spec (see :func:`given`)."""
    from pydantic_core import PydanticUndefined

    f = _field(name, spec)
    help_text = f.description or ""
    if f.default is not PydanticUndefined and f.default is not None:
        shown = ("on" if f.default else "off") if isinstance(f.default, bool) else f.default
        help_text += f" (default {shown})"
    return typer.Option(*flags, help=help_text, **kw)


def _calibration(calib: str | None, nsamples: int | None, seqlen: int | None, seed: int | None) -> dict:
    return given(source=calib, nsamples=nsamples, seqlen=seqlen, seed=seed)


@app.command(cls=RegistryHelp)
@user_errors
def prune(
    model: Annotated[str, opt("model", "--model", "-m")],
    method: Annotated[str, typer.Option(help="Unstructured: @methods@; METHOD+REFINEMENT (@refinements@, e.g. "
                                        "wanda+dsnot) refines its mask. Layer removal: @removal@.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (a Hugging Face model folder).")],
    sparsity: Annotated[float | None, opt("sparsity")] = None,
    nm: Annotated[str | None, opt("nm", "--nm")] = None,
    allocation: Annotated[str | None, opt("allocation")] = None,
    owl_m: Annotated[float | None, opt("owl_m")] = None,
    owl_lambda: Annotated[float | None, opt("owl_lambda")] = None,
    epsilon: Annotated[float | None, opt("epsilon")] = None,
    layerif_data: Annotated[str | None, opt("layerif_data")] = None,
    layerif_examples: Annotated[int | None, opt("layerif_examples")] = None,
    group: Annotated[str | None, opt("group")] = None,
    calib: Annotated[str | None, opt("source", "--calib")] = None,
    nsamples: Annotated[int | None, opt("nsamples")] = None,
    seqlen: Annotated[int | None, opt("seqlen")] = None,
    seed: Annotated[int | None, opt("seed")] = None,
    device: Annotated[str | None, opt("device")] = None,
    dtype: Annotated[str | None, opt("dtype")] = None,
    sequential: Annotated[bool | None, opt("sequential", "--sequential/--no-sequential")] = None,
    blocksize: Annotated[int | None, opt("blocksize")] = None,
    percdamp: Annotated[float | None, opt("percdamp")] = None,
    refine: Annotated[str | None, opt("refine")] = None,
    ria_a: Annotated[float | None, opt("ria_a")] = None,
    ria_permute: Annotated[bool | None, opt("ria_permute", "--ria-permute/--no-ria-permute")] = None,
    dsnot_cycles: Annotated[int | None, opt("dsnot_cycles")] = None,
    dsnot_threshold: Annotated[float | None, opt("dsnot_threshold")] = None,
    dsnot_skip: Annotated[str | None, opt("dsnot_skip")] = None,
    dlp_alpha: Annotated[float | None, opt("dlp_alpha")] = None,
    atp_beta: Annotated[float | None, opt("atp_beta")] = None,
    overwrite: Annotated[bool, opt("overwrite")] = False,
    trust_remote_code: Annotated[bool, opt("trust_remote_code")] = False,
    remove_layers: Annotated[int | None, opt("remove_layers")] = None,
    match_sparsity: Annotated[float | None, opt("match_sparsity")] = None,
    layers: Annotated[str | None, opt("layers")] = None,
    keep_last: Annotated[bool | None, opt("keep_last", "--keep-last")] = None,
    laco_threshold: Annotated[float | None, opt("laco_threshold")] = None,
    laco_span: Annotated[int | None, opt("laco_span")] = None,
    shortgpt_last: Annotated[str | None, opt("shortgpt_last")] = None,
) -> None:
    """Prune a model: one-shot unstructured (any sparsity or N:M) or remove whole decoder blocks.

    Unstructured calibration runs block by block (one block on the device at a time) and the realised
    sparsity is checked before anything is written. Layer removal updates the config and every layer
    index, then reloads the saved folder and checks generation before reporting success.

    Examples:
      prunescale prune --model tiny-reasoner --method wanda --sparsity 0.5 --out runs/wanda50
      prunescale prune --model tiny-reasoner --method ria+dsnot --sparsity 0.5 --allocation dlp --out runs/ria
      prunescale prune --model tiny-reasoner --method shortgpt --remove-layers 1 --out runs/short1
    """
    from prunescale.api import prune as run_prune
    from prunescale.api import prune_structured
    from prunescale.config import STRUCTURED, PruneSpec, StructuredSpec, validated

    common = dict(model=model, method=method, out=out_dir, overwrite=overwrite, trust_remote_code=trust_remote_code,
                  calibration=_calibration(calib, nsamples, seqlen, seed), **given(device=device, dtype=dtype))
    unstructured = given(sparsity=sparsity, nm=nm, allocation=allocation, owl_m=owl_m, owl_lambda=owl_lambda,
                         epsilon=epsilon, layerif_data=layerif_data, layerif_examples=layerif_examples, group=group,
                         sequential=sequential, blocksize=blocksize, percdamp=percdamp, refine=refine, ria_a=ria_a,
                         ria_permute=ria_permute, dsnot_cycles=dsnot_cycles, dsnot_threshold=dsnot_threshold,
                         dsnot_skip=dsnot_skip, dlp_alpha=dlp_alpha, atp_beta=atp_beta)
    structured = given(remove_layers=remove_layers, match_sparsity=match_sparsity, layers=layers, keep_last=keep_last,
                       laco_threshold=laco_threshold, laco_span=laco_span, shortgpt_last=shortgpt_last)
    if method in STRUCTURED:
        if unstructured:
            raise PrunescaleError(f"{method} removes whole blocks: --{sorted(unstructured)[0].replace('_', '-')} is "
                                  "an unstructured option (use --remove-layers, --match-sparsity or --layers)")
        if layers is not None:
            structured["layers"] = _int_list(layers, "--layers")
        prune_structured(validated(StructuredSpec, **common, **structured), log=say)
    else:
        if structured:
            raise PrunescaleError(f"{method} is unstructured: --{sorted(structured)[0].replace('_', '-')} is a "
                                  "layer-removal option (use --sparsity or --nm)")
        run_prune(validated(PruneSpec, **common, **unstructured), log=say, progress=err.is_terminal)
    out.print(f"pruned model: {out_dir}")


@app.command(cls=RegistryHelp)
@user_errors
def ppl(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedded name, HF folder, .gguf file or hub id.")],
    data: Annotated[str | None, typer.Option(help="Text source: @sources@ (wikitext2 and c4 follow the papers' "
                                             "protocol on their test split; default: the model's embedded "
                                             "source).")] = None,
    split: Annotated[str, typer.Option(help="train | validation | test (test: GSM8K's test file; a local file's "
                                      "rows of that split, or the whole file where its rows name none).")] = "test",
    seqlen: Annotated[int | None, typer.Option(help="Tokens per window.")] = None,
    limit: Annotated[int | None, typer.Option(help="Number of windows (default: every window of the wikitext2 / c4 "
                                               "protocol, 64 for other sources).", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed for window sampling.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Perplexity on a text source's test split (or another) — the quick check of a pruned model.

    Examples:
      prunescale ppl --model runs/wanda50 --data tiny --limit 32
      prunescale ppl --model runs/llama-wanda50 --data wikitext2 --seqlen 2048
    """
    from prunescale.api import ppl as run_ppl

    result = run_ppl(model, data, seqlen, limit, seed, split=split, dtype=dtype, device=device)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"perplexity {result['perplexity']:.4f} on {result['tokens']} tokens of {result['data']['source']}")


@app.command(cls=RegistryHelp)
@user_errors
def allocation(
    model: Annotated[str, opt("model", "--model", "-m")],
    allocation: Annotated[str, opt("allocation")],
    sparsity: Annotated[float, opt("sparsity")],
    calib: Annotated[str | None, opt("source", "--calib")] = None,
    nsamples: Annotated[int | None, opt("nsamples")] = None,
    seqlen: Annotated[int | None, opt("seqlen")] = None,
    seed: Annotated[int | None, opt("seed")] = None,
    owl_m: Annotated[float | None, opt("owl_m")] = None,
    owl_lambda: Annotated[float | None, opt("owl_lambda")] = None,
    epsilon: Annotated[float | None, opt("epsilon")] = None,
    layerif_data: Annotated[str | None, opt("layerif_data")] = None,
    layerif_examples: Annotated[int | None, opt("layerif_examples")] = None,
    dlp_alpha: Annotated[float | None, opt("dlp_alpha")] = None,
    atp_beta: Annotated[float | None, opt("atp_beta")] = None,
    device: Annotated[str | None, opt("device")] = None,
    dtype: Annotated[str | None, opt("dtype")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the per-module mapping).")] = False,
) -> None:
    """Show the per-block sparsity an allocation gives, without pruning.

    Example: prunescale allocation --model tiny-reasoner --allocation alpha --sparsity 0.5
    """
    from prunescale.api import allocation_table
    from prunescale.config import AllocationSpec, validated

    spec = validated(AllocationSpec, model=model, allocation=allocation, sparsity=sparsity,
                     calibration=_calibration(calib, nsamples, seqlen, seed),
                     **given(owl_m=owl_m, owl_lambda=owl_lambda, epsilon=epsilon, layerif_data=layerif_data,
                             layerif_examples=layerif_examples, dlp_alpha=dlp_alpha, atp_beta=atp_beta, device=device,
                             dtype=dtype))
    result = allocation_table(spec)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    extra = [k for k in result["blocks"][0] if k not in ("block", "sparsity", "params")]
    table = Table("block", "sparsity", "params", *extra, title=f"{allocation} at S={sparsity}")
    for r in result["blocks"]:
        table.add_row(str(r["block"]), f"{r['sparsity']:.4f}", str(r["params"]), *(f"{r[k]:.4g}" for k in extra))
    out.print(table)
    out.print(f"parameter-weighted mean: {result['mean']:.4f}")


@app.command("tune-allocation", cls=RegistryHelp)
@user_errors
def tune_allocation(
    model: Annotated[str, opt("model", "--model", "-m")],
    method: Annotated[str, opt("method")],
    sparsity: Annotated[float, opt("sparsity")],
    allocation: Annotated[str, opt("allocation")],
    grid: Annotated[str, typer.Option(help='Knob values, e.g. "m=3,5,7;lambda=0.04,0.08,0.16", "epsilon=0.1,0.3", '
                                      '"dlp_alpha=0.05,0.1,0.15" or "atp_beta=0.002,0.004".')],
    on: Annotated[str, typer.Option(help="Held-out data as SOURCE:validation or SOURCE:heldout (never test).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for tuning.json.")],
    calib: Annotated[str | None, opt("source", "--calib")] = None,
    nsamples: Annotated[int | None, opt("nsamples")] = None,
    seqlen: Annotated[int | None, opt("seqlen")] = None,
    seed: Annotated[int | None, opt("seed")] = None,
    layerif_data: Annotated[str | None, opt("layerif_data")] = None,
    layerif_examples: Annotated[int | None, opt("layerif_examples")] = None,
    sequential: Annotated[bool | None, opt("sequential", "--sequential/--no-sequential")] = None,
    blocksize: Annotated[int | None, opt("blocksize")] = None,
    percdamp: Annotated[float | None, opt("percdamp")] = None,
    refine: Annotated[str | None, opt("refine")] = None,
    ria_a: Annotated[float | None, opt("ria_a")] = None,
    dsnot_cycles: Annotated[int | None, opt("dsnot_cycles")] = None,
    dsnot_threshold: Annotated[float | None, opt("dsnot_threshold")] = None,
    dsnot_skip: Annotated[str | None, opt("dsnot_skip")] = None,
    group: Annotated[str | None, opt("group")] = None,
    device: Annotated[str | None, opt("device")] = None,
    dtype: Annotated[str | None, opt("dtype")] = None,
    limit: Annotated[int, typer.Option(help="Held-out windows for perplexity.", min=1)] = 32,
    overwrite: Annotated[bool, opt("overwrite")] = False,
) -> None:
    """Choose allocation knobs by held-out perplexity and record the choice (tuning.json).

    Every trial prunes exactly as `prunescale prune` would with that knob set (method options included).

    Example: prunescale tune-allocation --model tiny-reasoner --method wanda --sparsity 0.5 --allocation owl
    --grid "m=3,5,7;lambda=0.04,0.08" --on tiny:validation --out runs/tune-owl
    """
    from prunescale.api import tune_allocation as run_tune
    from prunescale.config import PruneSpec, validated

    spec = validated(PruneSpec, model=model, method=method, sparsity=sparsity, allocation=allocation, out=out_dir,
                     overwrite=overwrite, calibration=_calibration(calib, nsamples, seqlen, seed),
                     **given(layerif_data=layerif_data, layerif_examples=layerif_examples, sequential=sequential,
                             blocksize=blocksize, percdamp=percdamp, refine=refine, ria_a=ria_a,
                             dsnot_cycles=dsnot_cycles, dsnot_threshold=dsnot_threshold, dsnot_skip=dsnot_skip,
                             group=group, device=device, dtype=dtype))
    result = run_tune(spec, grid, on, limit, log=say)
    out.print(f"best {result['best']} (perplexity {result['best_perplexity']:.4f}) → {out_dir / 'tuning.json'}")


@app.command(cls=RegistryHelp)
@user_errors
def benchmarks(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the benchmarks and where their data comes from (offline package, hub, or generated).

    Example: prunescale benchmarks
    """
    from prunescale import plugins
    from prunescale.tts.benchmarks import BENCHMARKS, SOURCES, SPLITS

    plugins.load()
    rows = [{"name": n, "source": SOURCES[n], "splits": list(SPLITS[n])} for n in BENCHMARKS] + [
        {"name": "jsonl:PATH", "source": "local file: question/answer (+ choices) per line",
         "splits": ["those its rows name in a 'split' field; without one: test"]}
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("benchmark", "source", "splits")
    for r in rows:
        table.add_row(r["name"], r["source"], ", ".join(r["splits"]))
    out.print(table)


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise PrunescaleError(f"{what} must be comma-separated integers, got {text!r}") from None


@app.command("eval", cls=RegistryHelp)
@user_errors
def eval_cmd(
    model: Annotated[str, opt("model", "--model", "-m")],
    benchmark: Annotated[str, opt("benchmark")],
    budgets: Annotated[str, opt("budgets")],
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder (samples.jsonl, summary.json).")],
    split: Annotated[str | None, opt("split")] = None,
    limit: Annotated[int | None, opt("limit")] = None,
    wait: Annotated[int | None, opt("wait")] = None,
    min_budget: Annotated[int | None, opt("min_budget")] = None,
    samples: Annotated[int | None, opt("samples")] = None,
    temperature: Annotated[float | None, opt("temperature")] = None,
    top_p: Annotated[float | None, opt("top_p")] = None,
    top_k: Annotated[int | None, opt("top_k")] = None,
    min_p: Annotated[float | None, opt("min_p")] = None,
    seeds: Annotated[str | None, opt("seeds")] = None,
    answer_budget: Annotated[int | None, opt("answer_budget")] = None,
    engine: Annotated[str | None, opt("engine")] = None,
    tensor_parallel_size: Annotated[int | None, opt("tensor_parallel_size")] = None,
    batch_size: Annotated[int | None, opt("batch_size")] = None,
    dtype: Annotated[str | None, opt("dtype")] = None,
    device: Annotated[str | None, opt("device")] = None,
    think_open: Annotated[str | None, opt("think_open")] = None,
    think_close: Annotated[str | None, opt("think_close")] = None,
    label: Annotated[str | None, opt("label")] = None,
    grade_timeout: Annotated[float | None, opt("grade_timeout")] = None,
    trust_remote_code: Annotated[bool, opt("trust_remote_code")] = False,
    overwrite: Annotated[bool, opt("overwrite", spec=EvalSpec)] = False,
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
        budgets=_int_list(budgets, "--budgets"),
        out=out_dir,
        overwrite=overwrite,
        trust_remote_code=trust_remote_code,
        **given(split=split, limit=limit, wait=wait, min_budget=min_budget, samples=samples, temperature=temperature,
                top_p=top_p, top_k=top_k, min_p=min_p, seeds=_int_list(seeds, "--seeds") if seeds else None,
                answer_budget=answer_budget, engine=engine, tensor_parallel_size=tensor_parallel_size,
                batch_size=batch_size, dtype=dtype, device=device, think_open=think_open, think_close=think_close,
                label=label, grade_timeout=grade_timeout),
    )
    run = evaluate(spec, log=say, progress=err.is_terminal)
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


data_app = typer.Typer(help="Reference data: local copies of hub benchmarks and corpora.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch", cls=RegistryHelp)
@user_errors
def data_fetch(
    name: Annotated[str, typer.Argument(help="@fetchable@")],
    out_dir: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
    split: Annotated[str, typer.Option(help="Split to copy, written into every row (a benchmark's splits: "
                                       "`prunescale benchmarks`; corpora: train, validation or test).")] = "test",
    seed: Annotated[int, typer.Option(help="Choice-shuffling seed of multiple-choice items (the eval's first "
                                      "seed).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Copy a hub benchmark or corpus split to a JSONL file, on a machine that reaches the hub.

    Offline, `--benchmark jsonl:PATH` reads the copy as the very same items (ids, golds, choices), and a
    corpus copy is read as `--calib c4:PATH` / `--data wikitext2:PATH` with the corpus's own protocol.

    Example: prunescale data fetch aime24 --out data/aime24.jsonl
    """
    from prunescale.api import fetch_data

    result = fetch_data(name, out_dir, split, seed, overwrite)
    out.print(f"{result['rows']} rows of {result['documents']} → {result['out']}")


@app.command(cls=RegistryHelp)
@user_errors
def study(
    spec: Annotated[Path, typer.Argument(help="Study YAML (see examples/demo.yaml, examples/paper.yaml).")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Study folder (default runs/<name>).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded grid and what is cached.")] = False,
    jobs: Annotated[int, typer.Option(help="Variants run in parallel (local executor).")] = 1,
    executor: Annotated[str, typer.Option(help="local | ray (one task per variant on a Ray cluster)")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join, e.g. 10.0.0.1:6379 (default: "
                                                    "RAY_ADDRESS, else a local Ray on this machine).")] = None,
) -> None:
    """Run a whole pruning × test-time-scaling study from one YAML, resumably, then write the report.

    Each variant is pruned once and each (variant, benchmark) evaluated once; every stage is cached by a
    content hash of its inputs, so re-running reuses finished work and resumes unfinished work.

    Example: prunescale study examples/demo.yaml --out runs/demo
    """
    from prunescale.study.runner import run_study

    folder, rows = run_study(spec, out_dir, dry_run=dry_run, jobs=jobs, executor=executor, log=say,
                             ray_address=ray_address)
    if dry_run:
        table = Table("variant", "kind", "benchmark", "pruned", "evaluated", title=f"{spec} → {folder}")
        for r in rows:
            table.add_row(r["variant"], r["kind"], r["benchmark"], r["pruned"], r["evaluated"])
        out.print(table)
        return
    out.print(f"results: {folder / 'results.csv'}\nreport: {folder / 'report.md'} and {folder / 'report.html'}")


@app.command(cls=RegistryHelp)
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
