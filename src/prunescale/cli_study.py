"""The commands that evaluate, run studies, report and copy data: ``eval``, ``study``, ``report``, ``data
fetch``, ``benchmarks``. Same rules as :mod:`prunescale.cli`: parse, call :mod:`prunescale.api`, print; each
command imports its stage in its body so that ``--help`` never loads torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prunescale.cli_app import app
from prunescale.cli_options import RegistryHelp, err, out, say, schema_options, show_table, user_errors
from prunescale.config import EvalSpec, validated


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
