"""Run a study: prune each variant once, evaluate each (variant, benchmark) once, then tabulate and report.

Every stage is cached by content hash (see :mod:`store`) so a re-run reuses finished work and resumes
unfinished work; a crash at any point loses at most the sample group in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from prunescale import api, plugins
from prunescale.config import EvalSpec, PruneSpec, StructuredSpec, validated
from prunescale.errors import PrunescaleError
from prunescale.progress import progress_bar
from prunescale.report import study_report  # looked up at call time: fault-injection tests patch it there
from prunescale.study.executors import Failure, check_token, run_local, run_pool, run_ray
from prunescale.study.results import (
    INDEX,
    INDEX_VERSION,
    POOLED,
    POOLED_COLUMNS,
    RESULTS,
    collect_results,
    notices,
    pooled_results,
    results_csv,
)
from prunescale.study.spec import StudySpec, Variant, counterparts, expand, load_spec
from prunescale.study.store import (
    claim_folder,
    clean_stale_temps,
    stage_key,
    study_lock,
    write_json_atomic,
    write_text_atomic,
)
from prunescale.tts.benchmarks import load_benchmark

DEMO_SPEC = Path(__file__).resolve().parent / "demo.yaml"


@dataclass
class Stage:
    variant: Variant
    prune_dir: Path | None
    evals: list[tuple[str, Path]] = field(default_factory=list)


def _prune_inputs(spec: StudySpec, v: Variant) -> dict:
    fields = v.model_dump(exclude={"name"})
    return {"model": spec.model, "dtype": spec.dtype, "variant": fields, "calibration": spec.calibration.model_dump()}


def plan(spec: StudySpec, out: Path) -> list[Stage]:
    stages = []
    for v in expand(spec):
        prune_dir = (
            None if v.kind == "dense" else out / "prune" / f"{v.name}-{stage_key('prune', _prune_inputs(spec, v))}"
        )
        model_key = f"dense:{spec.model}" if prune_dir is None else prune_dir.name
        stage = Stage(v, prune_dir)
        for b in spec.eval.benchmarks:
            inputs = {"model": model_key, "benchmark": b, "eval": spec.eval.model_dump(exclude={"benchmarks"})}
            stage.evals.append(
                (b, out / "eval" / f"{v.name}-{b.replace(':', '_').replace('/', '_')}-{stage_key('eval', inputs)}")
            )
        stages.append(stage)
    return stages


def prune_done(d: Path | None) -> bool:
    return d is None or (d / "pruning_manifest.json").exists()


def eval_done(d: Path) -> bool:
    return (d / "summary.json").exists()


def _prune(spec: StudySpec, v: Variant, folder: Path, log: Callable[[str], None]) -> None:
    """Prune one variant: its options as the variant gives them (the rest keep the schema's defaults), with
    the study's model, calibration, device and dtype."""
    options = v.model_dump(exclude={"name"}, exclude_unset=True) | {"method": v.method}
    if v.kind == "quantized":  # the dense model quantized: a run that prunes nothing
        options["method"] = "none"
    s = validated(StructuredSpec if v.kind == "structured" else PruneSpec, **options, model=spec.model,
                  calibration=spec.calibration, device=spec.device, dtype=spec.dtype, out=folder, overwrite=True)
    if v.kind == "structured":
        api.prune_structured(s, log=log)
    else:
        api.prune_unstructured(s, log=log, progress=False)


def _evaluate(spec: StudySpec, model: str, v: Variant, runs: list[tuple[str, Path]],
              log: Callable[[str], None]) -> None:
    """Evaluate one variant on the benchmarks ``runs`` names, with the model loaded once for all of them."""
    specs = [validated(EvalSpec, **spec.eval.options(), model=model, benchmark=b, label=v.name, out=folder)
             for b, folder in runs]
    api.evaluate_all(specs, log=log, progress=False)


def run_variant(spec_dict: dict, stage_index: int, out: str, threads: int, token: str | None = None) -> list[str]:
    """Prune (if needed) and evaluate one variant with ``threads`` CPU threads; importable so Ray / process
    pools can call it. Every executor runs a variant with the same thread count (the study's), because
    float sums on the CPU depend on it and a study's numbers must not depend on where it ran. ``token``: the
    head's token, checked before any work where the variant may run on another node."""
    check_token(out, token)
    spec = StudySpec(**spec_dict)
    stage = plan(spec, Path(out))[stage_index]
    done: list[str] = []
    log = lambda _m: None  # noqa: E731 (stages keep what a user must see in their notices; the study prints them)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if not prune_done(stage.prune_dir):
            assert stage.prune_dir is not None
            _prune(spec, stage.variant, stage.prune_dir, log)
            done.append(f"pruned {stage.variant.name}")
        model = spec.model if stage.prune_dir is None else str(stage.prune_dir)
        pending = [(bench, folder) for bench, folder in stage.evals if not eval_done(folder)]
        if pending:
            _evaluate(spec, model, stage.variant, pending, log)
            done += [f"evaluated {stage.variant.name} on {bench}" for bench, _ in pending]
    finally:
        torch.set_num_threads(before)
    return done


def study_threads(spec: StudySpec) -> int:
    """The CPU threads each variant runs with: the study's ``threads``, else the cores torch sees here."""
    return spec.threads or torch.get_num_threads()


def stage_status(folder: Path | None, done: Callable[[Path], bool]) -> str:
    if folder is None or done(folder):
        return "done"
    return "partial" if folder.exists() else "todo"


def index(spec: StudySpec, stages: list[Stage], out: Path, kinds: dict[str, str] | None = None) -> dict:
    """The results index: every stage folder (relative to ``out``), its content hash and status, each
    benchmark's item kind (``kinds``), and the settings the report states. The report reads this, never
    the plan."""
    def where(folder: Path) -> dict:
        return {"folder": str(folder.relative_to(out)), "key": folder.name.rsplit("-", 1)[-1]}

    unquantized = counterparts([s.variant for s in stages])

    return {
        "version": INDEX_VERSION,
        "study": spec.name,
        "model": spec.model,
        "threads": study_threads(spec),
        "tuning_split": spec.tuning_split,
        "eval": spec.eval.model_dump(mode="json"),
        "variants": [
            {
                "name": s.variant.name,
                "kind": s.variant.kind,
                "method": getattr(s.variant, "label", s.variant.method),  # wanda+dsnot: a method of its own
                "quantize": s.variant.quant_label,
                "quantized_from": unquantized.get(s.variant.name, ""),
                "prune": None if s.prune_dir is None else where(s.prune_dir) | {
                    "status": stage_status(s.prune_dir, prune_done)},
                "evals": [{"benchmark": b, "item_kind": (kinds or {}).get(b, ""), **where(f),
                           "status": stage_status(f, eval_done)} for b, f in s.evals],
            }
            for s in stages
        ],
    }


def describe_plan(stages: list[Stage]) -> list[dict]:
    rows = []
    for s in stages:
        for bench, folder in s.evals:
            rows.append(
                {
                    "variant": s.variant.name,
                    "kind": s.variant.kind,
                    "benchmark": bench,
                    "pruned": "cached" if s.prune_dir is None or prune_done(s.prune_dir) else "to do",
                    "evaluated": "cached" if eval_done(folder) else ("partial" if folder.exists() else "to do"),
                }
            )
    return rows


def run_study(
    spec_path: Path,
    out: Path | None = None,
    dry_run: bool = False,
    jobs: int = 1,
    executor: str = "local",
    log: Callable[[str], None] = print,
    ray_address: str | None = None,
) -> tuple[Path, list[dict]]:
    """Run (or with ``dry_run`` only describe) a study; returns the study folder and the plan rows.
    ``ray_address``: the Ray cluster to join (default ``RAY_ADDRESS``, else a local one)."""
    spec = load_spec(spec_path)
    out = Path(out) if out else Path("runs") / spec.name
    stages = plan(spec, out)
    if executor not in ("local", "ray"):
        raise PrunescaleError(f"unknown executor {executor!r}; choose local or ray")
    if jobs < 1:
        raise PrunescaleError(f"--jobs must be ≥ 1, got {jobs}")
    if dry_run:  # describes the grid only: needs neither models nor benchmark data
        return out, describe_plan(stages)
    kinds = _check_benchmarks(spec)
    claim_folder(out, spec.name)
    with study_lock(out):
        write_json_atomic(out / "study.json", {"name": spec.name, "spec": spec.model_dump()})
        (out / "spec.yaml").write_text(Path(spec_path).read_text())
        for sub in ("prune", "eval"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            clean_stale_temps(out / sub)
        todo = [
            i for i, s in enumerate(stages) if not prune_done(s.prune_dir) or not all(eval_done(f) for _, f in s.evals)
        ]
        threads = study_threads(spec)
        log(f"{len(stages)} variants × {len(spec.eval.benchmarks)} benchmarks; {len(todo)} variants have work to do "
            f"({threads} CPU thread(s) each)")
        failures = _execute(spec, todo, out, jobs, executor, threads, ray_address, log)
        idx = index(spec, stages, out, kinds)
        write_json_atomic(out / INDEX, idx)
        write_text_atomic(out / RESULTS, results_csv(collect_results(out, idx)))
        write_text_atomic(out / POOLED, results_csv(pooled_results(out, idx), POOLED_COLUMNS))
        study_report.write_report(out)
        for n in notices(out, idx):  # the report's Notices, on the console of every executor
            log(f"notice: {n['variant']} ({n['stage']}): {n['notice']}")
    if failures:
        what = "; ".join(f"{f.variant}: {f.error}" for f in failures)
        raise PrunescaleError(f"{len(failures)} variant(s) failed ({what}); the others are done and reported; "
                              "re-run the study to resume the failed ones")
    return out, describe_plan(stages)


def _check_benchmarks(spec: StudySpec) -> dict[str, str]:
    """Each benchmark's item kind (math | choice | tiny), read from its first item; an offline hub benchmark
    fails here, clearly, before anything runs."""
    plugins.load()
    return {b: load_benchmark(b, spec.eval.split, 1, spec.eval.seeds[0])[0].kind for b in spec.eval.benchmarks}


def _execute(spec: StudySpec, todo: list[int], out: Path, jobs: int, executor: str, threads: int,
             ray_address: str | None, log: Callable[[str], None]) -> list[Failure]:
    spec_dict = spec.model_dump()
    names = [v.name for v in expand(spec)]
    if executor == "ray":
        cuda = spec.eval.device.startswith("cuda") or spec.device.startswith("cuda")
        gpus = (spec.eval.tensor_parallel_size if spec.eval.engine == "vllm" else 1) if cuda else 0
        return run_ray(run_variant, spec_dict, todo, names, out, threads, gpus, ray_address, log, lambda: None)
    with progress_bar("study", "variants") as bar:
        task_id = bar.add_task("study", total=len(todo))
        advance = lambda: bar.advance(task_id)  # noqa: E731
        if jobs == 1:
            return run_local(run_variant, spec_dict, todo, names, out, threads, log, advance)
        return run_pool(run_variant, spec_dict, todo, names, out, threads, jobs, log, advance)
