"""A study's results index and its tables: what the runner writes and the report reads.

``index.json`` lists every stage folder of the study (relative to the study folder), with the stage's
content hash and status, and the settings a report states. ``results.csv`` has one row per variant ×
benchmark × budget × seed; ``pooled.csv`` one row per variant × benchmark × budget, pooled over seeds
and samples with items as the unit (:mod:`prunescale.stats`), with the paired difference to dense on
the same items and its p-value, raw and Holm-adjusted over the benchmark's table. The report reads
these files and the folders the index names; it never re-plans the study (so a changed stage version
cannot make it find nothing), and nothing here imports the runner or the report.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

from prunescale.errors import PrunescaleError
from prunescale.stats.intervals import accuracy
from prunescale.stats.multiple import holm
from prunescale.stats.paired import paired
from prunescale.tts.run import read_samples

INDEX, RESULTS, POOLED = "index.json", "results.csv", "pooled.csv"
INDEX_VERSION = 3
QUANT_COLUMNS = ("quantize", "bits", "weight_bytes", "quantized_from")
RESULT_COLUMNS = (
    "variant",
    "kind",
    "method",
    "allocation",
    "regime",
    *QUANT_COLUMNS,
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
INT_COLUMNS = ("budget", "seed", "items", "bits")
TEXT_COLUMNS = ("variant", "kind", "method", "allocation", "regime", "quantize", "quantized_from", "benchmark", "split")
FLOAT_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in INT_COLUMNS + TEXT_COLUMNS)
POOLED_COLUMNS = (
    "variant",
    "kind",
    "method",
    "allocation",
    "regime",
    *QUANT_COLUMNS,
    "target_sparsity",
    "removed_param_fraction",
    "benchmark",
    "split",
    "budget",
    "items",
    "seeds",
    "observations",
    "accuracy",
    "ci_low",
    "ci_high",
    "n_eff",
    "delta",
    "delta_low",
    "delta_high",
    "p",
    "p_holm",
    "mean_thinking_tokens",
    "forced_end_rate",
    "no_answer_rate",
)
POOLED_INT = ("budget", "items", "seeds", "observations", "bits")
POOLED_FLOAT = tuple(c for c in POOLED_COLUMNS if c not in POOLED_INT + TEXT_COLUMNS)


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


def runs(out: Path, index: dict):
    """(variant entry, its manifest, benchmark, samples) for every evaluation the index lists."""
    for v in index["variants"]:
        m = manifest(out, v)
        for ev in v["evals"]:
            yield v, m, ev["benchmark"], read_samples(Path(out) / ev["folder"] / "samples.jsonl")


def _variant_columns(v: dict, m: dict, dense: dict) -> dict:
    """Who a row is: the variant, its method and allocation, its pruning regime (where its pruning statistics
    came from: sequential, dense-activations, data-free; empty for dense and layer removal), its quantization
    (``bits``: the quantized weights' bits, else the stored dtype's) and the estimated bytes of its weights
    (``dense``: the dense model's, as every pruning run of the study recorded them)."""
    quant = m.get("quantization") or {}
    bits = quant.get("bits") or _dtype_bits(m.get("saved_dtype")) or dense.get("bits", 0)
    size = m.get("weight_bytes") if m else dense.get("bytes")
    return {"variant": v["name"], "kind": v["kind"], "method": v["method"], "allocation": m.get("allocation", "") or "",
            "regime": m.get("regime", "") or "", "quantize": v["quantize"], "bits": bits,
            "weight_bytes": float(size) if size is not None else float("nan"), "quantized_from": v["quantized_from"],
            "target_sparsity": m.get("target_sparsity") or 0.0}


def _dtype_bits(name: str | None) -> int:
    return {"float32": 32, "bfloat16": 16, "float16": 16}.get(name or "", 0)


def dense_size(out: Path, index: dict) -> dict:
    """The dense model's weight bytes and dtype bits, from any pruning manifest of the study (each records
    the model it started from); empty when the study pruned nothing."""
    for v in index["variants"]:
        m = manifest(out, v)
        if m.get("dense_weight_bytes"):
            return {"bytes": m["dense_weight_bytes"], "bits": _dtype_bits(m.get("saved_dtype"))}
    return {}


def _rates(flat: list[dict]) -> dict:
    return {
        "mean_thinking_tokens": sum(x["thinking_tokens"] for x in flat) / len(flat),
        "forced_end_rate": sum(x["forced_end"] for x in flat) / len(flat),
        "no_answer_rate": sum(x["status"] == "no_answer" for x in flat) / len(flat),
    }


def collect_results(out: Path, index: dict) -> list[dict]:
    """One row per variant × benchmark × budget × seed, from each finished run's samples.jsonl."""
    rows = []
    dense_info = dense_size(out, index)
    for v, m, bench, samples in runs(out, index):
        groups: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        flats: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for r in samples:
            groups[(r["budget"], r["seed"])][r["item_id"]].append(float(r["correct"]))
            flats[(r["budget"], r["seed"])].append(r)
        for (budget, seed), items in sorted(groups.items()):
            est = accuracy(list(items.values()))
            rows.append({
                **_variant_columns(v, m, dense_info),
                "realised_sparsity": m.get("realised_sparsity") or 0.0,
                "removed_param_fraction": m.get("removed_param_fraction") or 0.0,
                "benchmark": bench,
                "split": index["eval"]["split"],
                "budget": budget,
                "seed": seed,
                "items": len(items),
                "accuracy": est.value,
                "ci_low": est.low,
                "ci_high": est.high,
                **_rates(flats[(budget, seed)]),
            })
    return [{k: r[k] for k in RESULT_COLUMNS} for r in rows]


def item_accuracy(samples: list[dict], budget: int) -> dict[str, list[float]]:
    """Item id → its observations (every seed and sample) at one budget."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in samples:
        if r["budget"] == budget:
            out[r["item_id"]].append(float(r["correct"]))
    return out


def pooled_results(out: Path, index: dict) -> list[dict]:
    """One row per variant × benchmark × budget: accuracy pooled over seeds and samples (items the unit),
    and against dense on the same items: the mean paired difference, its interval and p-value, raw and
    Holm-adjusted over the benchmark's family (every non-dense variant × budget)."""
    table = list(runs(out, index))
    dense_info = dense_size(out, index)
    dense = {bench: samples for v, _, bench, samples in table if v["kind"] == "dense"}
    rows = []
    for v, m, bench, samples in table:
        for budget in sorted({r["budget"] for r in samples}):
            obs = item_accuracy(samples, budget)
            est = accuracy(list(obs.values()))
            row = {
                **_variant_columns(v, m, dense_info),
                "removed_param_fraction": m.get("removed_param_fraction") or 0.0,
                "benchmark": bench,
                "split": index["eval"]["split"],
                "budget": budget,
                "items": len(obs),
                "seeds": len({r["seed"] for r in samples if r["budget"] == budget}),
                "observations": sum(len(o) for o in obs.values()),
                "accuracy": est.value,
                "ci_low": est.low,
                "ci_high": est.high,
                "n_eff": est.n_eff,
                **dict.fromkeys(("delta", "delta_low", "delta_high", "p", "p_holm"), float("nan")),
                **_rates([r for r in samples if r["budget"] == budget]),
            }
            if v["kind"] != "dense" and bench in dense:
                mean = lambda o: {i: sum(x) / len(x) for i, x in o.items()}  # noqa: E731
                d = paired(mean(obs), mean(item_accuracy(dense[bench], budget)))
                row.update(delta=d.delta, delta_low=d.low, delta_high=d.high, p=d.p)
            rows.append(row)
    for bench in {r["benchmark"] for r in rows}:
        family = [r for r in rows if r["benchmark"] == bench and r["p"] == r["p"]]
        for r, adjusted in zip(family, holm([r["p"] for r in family])):
            r["p_holm"] = adjusted
    return rows


def _summary(out: Path, folder: str) -> dict:
    path = Path(out) / folder / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _environment_key(env: dict) -> dict:
    """What of a stage's environment can change its numbers without changing its inputs."""
    packages = env.get("packages") or {}
    return {"threads": env.get("threads"), "device": env.get("device"), "torch": env.get("torch"),
            "transformers": packages.get("transformers"), "vllm": packages.get("vllm")}


def notices(out: Path, index: dict) -> list[dict]:
    """Every warning of the study, each once: what each stage recorded (its manifest's or summary's
    ``notices``) with the variant and stage it belongs to, then what only the whole study shows — variants
    pruned in different regimes, stages run with different threads, devices or package versions. Read by
    the report (its Notices section) and by ``study`` (the console, whatever the executor)."""
    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    regimes: dict[str, list[str]] = defaultdict(list)
    environments: dict[str, list[str]] = defaultdict(list)

    def add(variant: str, stage: str, text: str) -> None:
        if (variant, stage, text) not in seen:
            seen.add((variant, stage, text))
            rows.append({"variant": variant, "stage": stage, "notice": text})

    for v in index["variants"]:
        m = manifest(out, v)
        for text in m.get("notices", []):
            add(v["name"], "prune", text)
        if m.get("regime") and m["regime"] != "data-free":
            regimes[m["regime"]].append(v["name"])
        if m.get("environment"):
            environments[json.dumps(_environment_key(m["environment"]), sort_keys=True)].append(f"{v['name']} (prune)")
        for ev in v["evals"]:
            summ = _summary(out, ev["folder"])
            for text in summ.get("notices", []):
                add(v["name"], f"eval {ev['benchmark']}", text)
            if summ.get("environment"):
                environments[json.dumps(_environment_key(summ["environment"]), sort_keys=True)].append(
                    f"{v['name']} ({ev['benchmark']})")
    if len(regimes) > 1:
        groups = "; ".join(f"{r}: {', '.join(names)}" for r, names in sorted(regimes.items()))
        add("(study)", "compare", f"calibrated variants were pruned in different regimes ({groups}); a comparison "
            "across regimes changes how the pruning statistics were gathered as well as the named factor "
            "(the claims compare allocations within one regime only)")
    if len(environments) > 1:
        groups = "; ".join(f"{', '.join(f'{k}={v}' for k, v in json.loads(key).items())}: {', '.join(names)}"
                           for key, names in environments.items())
        add("(study)", "compare", f"stages ran in different environments ({groups}); float sums, and so pruned "
            "weights and traces, may differ between them (README: Reproducibility)")
    return rows


def results_csv(rows: list[dict], columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _read_csv(path: Path, floats: tuple[str, ...], ints: tuple[str, ...]) -> list[dict]:
    if not path.exists():
        raise PrunescaleError(f"{path.parent} has no {path.name}; run `prunescale study` first")
    with path.open() as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    for r in rows:
        for k in floats:
            r[k] = float(r[k])
        for k in ints:
            r[k] = int(r[k])
    return rows


def read_pooled(out: Path) -> list[dict]:
    """pooled.csv with its column types."""
    return _read_csv(Path(out) / POOLED, POOLED_FLOAT, POOLED_INT)


def read_results(out: Path) -> list[dict]:
    """results.csv with its column types (the one column list above)."""
    return _read_csv(Path(out) / RESULTS, FLOAT_COLUMNS, INT_COLUMNS)
