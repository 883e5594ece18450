"""Allocation knobs chosen on held-out data: every knob set of a grid pruned exactly as ``prune`` would, scored
by perplexity on a validation (or held-out) split, never on the test items a report shows."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

from prunescale import plugins
from prunescale.api.loading import Log, calibration_for, load_and_calibrate
from prunescale.api.output import staged
from prunescale.api.pruning import apply_spec
from prunescale.config import PruneSpec, grid_knobs, validated
from prunescale.data.calibration import check_source, load_calibration
from prunescale.errors import PrunescaleError
from prunescale.eval.perplexity import perplexity
from prunescale.provenance import environment

HELDOUT_SPLITS = ("validation", "heldout")


def parse_grid(text: str) -> list[dict[str, float]]:
    """``"m=3,5;lambda=0.04,0.08"`` → every combination as spec fields (knob names: :func:`grid_knobs`)."""
    knobs = grid_knobs()
    axes: list[tuple[str, list[float]]] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, _, values = part.partition("=")
        if key.strip() not in knobs:
            raise PrunescaleError(f"--grid: unknown knob {key.strip()!r}; use {', '.join(knobs)}")
        try:
            axes.append((knobs[key.strip()], [float(v) for v in values.split(",") if v.strip()]))
        except ValueError:
            raise PrunescaleError(f"--grid: values of {key.strip()} must be numbers, got {values!r}") from None
        if not axes[-1][1]:
            raise PrunescaleError(f"--grid: {key.strip()} has no values")
    if not axes:
        raise PrunescaleError('--grid is empty; e.g. "m=3,5,7;lambda=0.04,0.08"')
    return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def tune_allocation(spec: PruneSpec, grid: str, on: str, limit: int = 32, log: Log = print) -> dict:
    """Pick allocation knobs by perplexity on a held-out split (never on reported test items).

    ``spec`` is the PruneSpec to tune (its ``out`` receives ``tuning.json``); ``on`` is ``SOURCE:SPLIT``
    with SPLIT in validation / heldout.
    """
    source, _, split = on.rpartition(":")
    if split not in HELDOUT_SPLITS or not source:
        raise PrunescaleError(f"--on must be SOURCE:validation or SOURCE:heldout (never the test split), got {on!r}")
    plugins.load()
    check_source(source)
    trials = parse_grid(grid)
    # every knob set is checked before anything loads (a knob of another allocation is an error)
    specs = [validated(PruneSpec, **{**spec.model_dump(exclude_unset=True), **t}) for t in trials]
    out = Path(spec.out)
    with staged(out, spec.overwrite) as tmp:
        lm, calib = load_and_calibrate(spec, spec.needs_calibration, log)
        _, seqlen = calibration_for(spec.model, source, spec.calibration.seqlen)
        held = load_calibration(source, lm.tokenizer, limit, seqlen, spec.calibration.seed, split, lm.model,
                                model_name=spec.model)
        rows = []
        for trial, tspec in zip(trials, specs):
            trial_lm = type(lm)(copy.deepcopy(lm.model), lm.tokenizer, lm.ref)
            done = apply_spec(tspec, trial_lm, calib)
            score = perplexity(trial_lm.model, held.samples)["perplexity"]
            rows.append({**trial, "perplexity": score, "per_block": done.allocation.per_block})
            log(f"{trial}: perplexity {score:.4f}")
        best = min(rows, key=lambda r: r["perplexity"])
        result = {
            "model": spec.model,
            "method": spec.method,
            "allocation": spec.allocation,
            "sparsity": spec.sparsity,
            "selected_on": held.spec,
            "trials": rows,
            "best": {k: best[k] for k in trials[0]},
            "best_perplexity": best["perplexity"],
            "environment": environment(),
        }
        (tmp / "tuning.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
