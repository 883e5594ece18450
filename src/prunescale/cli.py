"""The ``prunescale`` command line: parses, calls :mod:`prunescale.api`, prints. No logic lives here.

Errors meant for users (:class:`~prunescale.errors.PrunescaleError`, bad options) print one line on
stderr and exit with code 2; ``--debug`` shows the traceback instead. Each command imports the stage it
runs in its body (the one place prunescale imports inside functions by design): the stages load torch and
transformers, which ``prunescale --help`` and a mistyped option should never wait for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prunescale import __version__
from prunescale.cli_options import (
    RegistryHelp,
    err,
    flag,
    help_of,
    out,
    pick,
    say,
    schema_options,
    set_debug,
    show_table,
    user_errors,
)
from prunescale.config import (
    AllocationSpec,
    Calibration,
    Device,
    EvalSpec,
    ModelInput,
    Output,
    PruneSpec,
    StructuredOptions,
    StructuredSpec,
    UnstructuredOptions,
    grid_knobs,
    validated,
)
from prunescale.errors import PrunescaleError
from prunescale.registry import REMOVALS

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
    show_table(("name", "params", "source", "path"), [
        (r["name"], f"{r['params'] / 1e6:.1f}M" if r["params"] else "?", r["source"],
         r["path"] or "[dim]not on this machine[/dim]") for r in rows])


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


@app.command(cls=RegistryHelp)
@user_errors
@schema_options(ModelInput, UnstructuredOptions, StructuredOptions, Calibration, Device, Output, helps={
    "method": "Unstructured: @methods@; METHOD+REFINEMENT (@refinements@, e.g. wanda+dsnot) refines its mask. "
              "Layer removal: @removal@.",
    "out": "Output folder (a Hugging Face model folder)."})
def prune(**options: Any) -> None:
    """Prune a model: one-shot unstructured (any sparsity or N:M) or remove whole decoder blocks.

    Unstructured calibration runs block by block (one block on the device at a time) and the realised
    sparsity is checked before anything is written. Layer removal updates the config and every layer
    index, then reloads the saved folder and checks generation before reporting success.

    Examples:
      prunescale prune --model tiny-reasoner --method wanda --sparsity 0.5 --out runs/wanda50
      prunescale prune --model tiny-reasoner --method ria+dsnot --sparsity 0.5 --allocation dlp --out runs/ria
      prunescale prune --model tiny-reasoner --method shortgpt --remove-layers 1 --out runs/short1
    """
    from prunescale.api import prune_structured, prune_unstructured

    method = options["method"]
    common = {**pick(options, ModelInput, Device, Output), "method": method,
              "calibration": pick(options, Calibration)}
    unstructured = pick(options, UnstructuredOptions, exclude=("method",))
    structured = pick(options, StructuredOptions, exclude=("method",))
    if method in REMOVALS:
        if unstructured:
            raise PrunescaleError(f"{method} removes whole blocks: {flag(sorted(unstructured)[0])} is an "
                                  "unstructured option (use --remove-layers, --match-sparsity or --layers)")
        prune_structured(validated(StructuredSpec, **common, **structured), log=say)
    else:
        if structured:
            raise PrunescaleError(f"{method} is unstructured: {flag(sorted(structured)[0])} is a layer-removal "
                                  "option (use --sparsity or --nm)")
        prune_unstructured(validated(PruneSpec, **common, **unstructured), log=say, progress=err.is_terminal)
    out.print(f"pruned model: {options['out']}")


@app.command(cls=RegistryHelp)
@user_errors
@schema_options(Device)
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    **options: Any,
) -> None:
    """Perplexity on a text source's test split (or another) — the quick check of a pruned model.

    Examples:
      prunescale ppl --model runs/wanda50 --data tiny --limit 32
      prunescale ppl --model runs/llama-wanda50 --data wikitext2 --seqlen 2048
    """
    from prunescale.api import ppl as run_ppl

    device = validated(Device, **options)
    result = run_ppl(model, data, seqlen, limit, seed, split=split, dtype=device.dtype, device=device.device)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        out.print(f"perplexity {result['perplexity']:.4f} on {result['tokens']} tokens of {result['data']['source']}")


@app.command(cls=RegistryHelp)
@user_errors
@schema_options(AllocationSpec, Calibration)
def allocation(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with the per-module mapping).")] = False,
    **options: Any,
) -> None:
    """Show the per-block sparsity an allocation gives, without pruning.

    Example: prunescale allocation --model tiny-reasoner --allocation alpha --sparsity 0.5
    """
    from prunescale.api import allocation_table

    spec = validated(AllocationSpec, **pick(options, AllocationSpec), calibration=pick(options, Calibration))
    result = allocation_table(spec)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return
    extra = [k for k in result["blocks"][0] if k not in ("block", "sparsity", "params")]
    show_table(("block", "sparsity", "params", *extra), [
        (str(r["block"]), f"{r['sparsity']:.4f}", str(r["params"]), *(f"{r[k]:.4g}" for k in extra))
        for r in result["blocks"]], title=f"{spec.allocation} at S={spec.sparsity}")
    out.print(f"parameter-weighted mean: {result['mean']:.4f}")


@app.command("tune-allocation", cls=RegistryHelp)
@user_errors
@schema_options(ModelInput, UnstructuredOptions, Calibration, Device, Output,
                exclude=("nm", "ria_permute", *grid_knobs().values()), helps={"out": "Folder for tuning.json."})
def tune_allocation(
    sparsity: Annotated[float, typer.Option(help=help_of(UnstructuredOptions.model_fields["sparsity"]))],
    allocation: Annotated[str, typer.Option(help=help_of(UnstructuredOptions.model_fields["allocation"]))],
    grid: Annotated[str, typer.Option(help='Knob values, e.g. "m=3,5,7;lambda=0.04,0.08,0.16" or "epsilon=0.1,0.3"; '
                                      "knobs: @grid@.")],
    on: Annotated[str, typer.Option(help="Held-out data as SOURCE:validation or SOURCE:heldout (never test).")],
    limit: Annotated[int, typer.Option(help="Held-out windows for perplexity.", min=1)] = 32,
    **options: Any,
) -> None:
    """Choose allocation knobs by held-out perplexity and record the choice (tuning.json).

    Every trial prunes exactly as `prunescale prune` would with that knob set (method options included).

    Example: prunescale tune-allocation --model tiny-reasoner --method wanda --sparsity 0.5 --allocation owl
    --grid "m=3,5,7;lambda=0.04,0.08" --on tiny:validation --out runs/tune-owl
    """
    from prunescale.api import tune_allocation as run_tune

    spec = validated(PruneSpec, **pick(options, ModelInput, UnstructuredOptions, Device, Output), sparsity=sparsity,
                     allocation=allocation, calibration=pick(options, Calibration))
    result = run_tune(spec, grid, on, limit, log=say)
    out.print(f"best {result['best']} (perplexity {result['best_perplexity']:.4f}) → {spec.out / 'tuning.json'}")


@app.command(cls=RegistryHelp)
@user_errors
def benchmarks(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the benchmarks and where their data comes from (offline package, hub, or generated).

    Example: prunescale benchmarks
    """
    from prunescale.api import list_benchmarks

    rows = list_benchmarks()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    show_table(("benchmark", "source", "splits"), [(r["name"], r["source"], ", ".join(r["splits"])) for r in rows])


@app.command("eval", cls=RegistryHelp)
@user_errors
@schema_options(EvalSpec, helps={"out": "Run folder (samples.jsonl, summary.json)."})
def eval_cmd(**options: Any) -> None:
    """Accuracy vs thinking budget with budget forcing (cap, Wait), parallel samples and grading.

    Every budget comes from one thinking trace per (item, seed, sample) cut at that budget (prefix reuse);
    an interrupted run resumes from samples.jsonl.

    Example: prunescale eval --model tiny-reasoner --benchmark tiny --limit 200 --budgets 0,12,24,48,96 --out runs/eval
    """
    from prunescale.api import evaluate

    spec = validated(EvalSpec, **options)
    run = evaluate(spec, log=say, progress=err.is_terminal)
    summary = json.loads((run / "summary.json").read_text())
    show_table(("budget", "accuracy %", "95 % CI", "mean thinking", "forced end %"), [
        (str(b["budget"]), f"{100 * b['accuracy']:.1f}", f"{100 * b['ci95'][0]:.1f}–{100 * b['ci95'][1]:.1f}",
         f"{b['mean_thinking_tokens']:.1f}", f"{100 * b['forced_end_rate']:.1f}") for b in summary["budgets"]],
        title=str(run))


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
        columns = ("variant", "kind", "benchmark", "pruned", "evaluated")
        show_table(columns, [[r[c] for c in columns] for r in rows], title=f"{spec} → {folder}")
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
