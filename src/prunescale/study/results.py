"""A study's results index and its table: what the runner writes and the report reads.

``index.json`` lists every stage folder of the study (relative to the study folder), with the stage's
content hash and status, and the settings a report states. ``results.csv`` has one row per variant ×
benchmark × budget × seed. The report reads these two files and the folders the index names; it never
re-plans the study (so a changed stage version cannot make it find nothing), and nothing here imports
the runner or the report.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from prunescale.errors import PrunescaleError

INDEX, RESULTS = "index.json", "results.csv"
INDEX_VERSION = 1
RESULT_COLUMNS = (
    "variant",
    "kind",
    "method",
    "allocation",
    "target_sparsity",
    "realised_sparsity",
    "removed_param_fraction",
    "benchmark",
    "split",
    "budget",
    "seed",
    "items",
    "accuracy",
    "ci_low",
    "ci_high",
    "mean_thinking_tokens",
    "forced_end_rate",
    "no_answer_rate",
)
INT_COLUMNS = ("budget", "seed", "items")
TEXT_COLUMNS = ("variant", "kind", "method", "allocation", "benchmark", "split")
FLOAT_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in INT_COLUMNS + TEXT_COLUMNS)


def read_index(out: Path) -> dict:
    """The index of a study folder (raises a one-line error if there is none)."""
    path = Path(out) / INDEX
    if not path.exists():
        raise PrunescaleError(f"{out} is not a finished study folder (no {INDEX}); run `prunescale study` first")
    index = json.loads(path.read_text())
    if index.get("version") != INDEX_VERSION:
        raise PrunescaleError(f"{path} is of another prunescale version ({index.get('version')}); re-run the study")
    return index


def manifest(out: Path, variant: dict) -> dict:
    """A variant's pruning manifest ({} for dense or a variant not pruned yet)."""
    folder = variant.get("prune")
    path = Path(out) / folder["folder"] / "pruning_manifest.json" if folder else None
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def collect_results(out: Path, index: dict) -> list[dict]:
    """One row per variant × benchmark × budget × seed, from each finished run's samples.jsonl."""
    from prunescale.tts.run import read_samples
    from prunescale.tts.stats import bootstrap_ci

    rows = []
    for v in index["variants"]:
        m = manifest(out, v)
        for ev in v["evals"]:
            groups: dict[tuple[int, int], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
            for r in read_samples(Path(out) / ev["folder"] / "samples.jsonl"):
                groups[(r["budget"], r["seed"])][r["item_id"]].append(r)
            for (budget, seed), items in sorted(groups.items()):
                per_item = [sum(x["correct"] for x in v_) / len(v_) for v_ in items.values()]
                flat = [x for v_ in items.values() for x in v_]
                acc, low, high = bootstrap_ci(per_item)
                rows.append(
                    {
                        "variant": v["name"],
                        "kind": v["kind"],
                        "method": v["method"],
                        "allocation": m.get("allocation", "") or "",
                        "target_sparsity": m.get("target_sparsity") or 0.0,
                        "realised_sparsity": m.get("realised_sparsity") or 0.0,
                        "removed_param_fraction": m.get("removed_param_fraction") or 0.0,
                        "benchmark": ev["benchmark"],
                        "split": index["eval"]["split"],
                        "budget": budget,
                        "seed": seed,
                        "items": len(items),
                        "accuracy": acc,
                        "ci_low": low,
                        "ci_high": high,
                        "mean_thinking_tokens": sum(x["thinking_tokens"] for x in flat) / len(flat),
                        "forced_end_rate": sum(x["forced_end"] for x in flat) / len(flat),
                        "no_answer_rate": sum(x["status"] == "no_answer" for x in flat) / len(flat),
                    }
                )
    return rows


def results_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def read_results(out: Path) -> list[dict]:
    """results.csv with its column types (the one column list above)."""
    path = Path(out) / RESULTS
    if not path.exists():
        raise PrunescaleError(f"{out} has no {RESULTS}; run `prunescale study` first")
    with path.open() as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    for r in rows:
        for k in FLOAT_COLUMNS:
            r[k] = float(r[k])
        for k in INT_COLUMNS:
            r[k] = int(r[k])
    return rows
