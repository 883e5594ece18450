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

from prunescale.cli_app import app
from prunescale.cli_options import (
    RegistryHelp,
    err,
    flag,
    help_of,
    out,
    pick,
    say,
    schema_options,
    show_table,
    user_errors,
)
from prunescale.config import (
    AllocationSpec,
    Calibration,
    Device,
    ModelInput,
    Output,
    PruneSpec,
    QuantizeOptions,
    QuantizeSpec,
    SaveFormat,
    StructuredOptions,
    StructuredSpec,
    UnstructuredOptions,
    grid_knobs,
    validated,
)
from prunescale.errors import PrunescaleError
from prunescale.registry import REMOVALS


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
    """The demo study on the embedded tiny reasoner: prune and quantize 16 ways, measure accuracy vs budget.

    Runs examples/demo.yaml (dense; Wanda at 20, 50 and 70 % with uniform, OWL and AlphaPruning allocation;
    SparseGPT and Magnitude at 70 %; ShortGPT removing 1 and 2 blocks; dense and Wanda 50 % with 4-bit GPTQ
    weights, Wanda 50 % with 4-bit RTN weights; 5 budgets; 128 items of the test
    split and of the hard split) offline on a CPU, then writes report.md / report.html with intervals,
    paired tests against dense and the reference study's claims judged. Re-running reuses finished stages.

    Example: prunescale demo --out runs/demo
    """
    from prunescale.study.runner import DEMO_SPEC, run_study

    folder, _ = run_study(DEMO_SPEC, out_dir, log=say)
    out.print(f"report: {folder / 'report.md'} (and report.html, results.csv, tts_curves.png)")


@app.command(cls=RegistryHelp)
@user_errors
@schema_options(ModelInput, UnstructuredOptions, StructuredOptions, SaveFormat, Calibration, Device, Output, helps={
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
      prunescale prune --model tiny-reasoner --method wanda --sparsity 0.5 --quantize gptq --bits 4 --group-size 32
      --out runs/wanda50-w4
    """
    from prunescale.api import prune_structured, prune_unstructured

    method = options["method"]
    common = {**pick(options, ModelInput, SaveFormat, Device, Output), "method": method,
              "calibration": pick(options, Calibration)}
    quantization = pick(options, QuantizeOptions)  # after either kind of pruning
    unstructured = pick(options, UnstructuredOptions, exclude=("method", *quantization))
    structured = pick(options, StructuredOptions, exclude=("method", *quantization))
    if method in REMOVALS:
        if unstructured:
            raise PrunescaleError(f"{method} removes whole blocks: {flag(sorted(unstructured)[0])} is an "
                                  "unstructured option (use --remove-layers, --match-sparsity or --layers)")
        prune_structured(validated(StructuredSpec, **common, **structured, **quantization), log=say)
    else:
        if structured:
            raise PrunescaleError(f"{method} is unstructured: {flag(sorted(structured)[0])} is a layer-removal "
                                  "option (use --sparsity or --nm)")
        prune_unstructured(validated(PruneSpec, **common, **unstructured, **quantization), log=say,
                           progress=err.is_terminal)
    out.print(f"pruned model: {options['out']}")


@app.command(cls=RegistryHelp)
@user_errors
@schema_options(ModelInput, QuantizeOptions, SaveFormat, Calibration, Device, Output, helps={
    "model": "A pruned folder (its manifest is extended), or any model prunescale loads.",
    "out": "Output folder (a Hugging Face model folder)."})
def quantize(**options: Any) -> None:
    """Quantize the weights of a model or an already pruned folder (RTN, or GPTQ on calibration data).

    Weight-only, per group; a pruned weight stays exactly zero. The folder holds the dequantized weights in
    the model's dtype (every engine loads it): it measures the accuracy of the quantized model, not its speed.

    With --save-format packed (compressed-tensors installed; 4 or 8 bits) the folder also holds packed/: the
    same integers packed as vLLM's int4/int8 weight-only kernels read them, checked against the dequantized
    weights before the folder is kept.

    Example: prunescale quantize --model runs/wanda50 --quantize gptq --bits 4 --group-size 32 --out runs/wanda50-w4
    """
    from prunescale.api import quantize_folder

    spec = validated(QuantizeSpec, **pick(options, ModelInput, QuantizeOptions, SaveFormat, Device, Output),
                     calibration=pick(options, Calibration))
    quantize_folder(spec, log=say, progress=err.is_terminal)
    out.print(f"quantized model: {spec.out}")


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
                exclude=("nm", "ria_permute", *grid_knobs().values(), *QuantizeOptions.model_fields),
                helps={"out": "Folder for tuning.json."})
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


# the commands that read and report (eval, study, report, data, the benchmark list), registered on the same app
from prunescale import cli_study  # noqa: E402, F401

if __name__ == "__main__":  # pragma: no cover
    app()
