"""One evaluation run: items × seeds × samples, every budget by prefix reuse, graded, written as it goes.

Run folder: ``spec.json`` (what was asked), ``samples.jsonl`` (one line per sample and budget, appended
group by group and flushed, so a crash loses at most the group in flight and a re-run resumes), and
``summary.json`` (written last, atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from prunescale.config import EvalSpec
from prunescale.errors import PrunescaleError
from prunescale.progress import progress_bar
from prunescale.provenance import environment
from prunescale.stats.intervals import accuracy
from prunescale.tts.benchmarks import Item, load_benchmark
from prunescale.tts.forcing import BudgetResult, Markers, Policy, sweep
from prunescale.tts.grading import Grader
from prunescale.tts.kinds import Kind, kind_of
from prunescale.tts.metrics import cov_at_k, maj_at_k, pass_at_k
from prunescale.tts.prompting import check_markers, encode_prompt, notice, render, think_format

SAMPLES, SUMMARY, SPEC, STARTS = "samples.jsonl", "summary.json", "spec.json", "starts.jsonl"
PROTOCOL = 3  # bump when what a sample means changes (2: literal boundary, per-family formats, cue-free grading;
# 3: a Wait round counts once its "Wait" is kept, grader_error status)
NOT_IN_KEY = ("out", "overwrite")  # where a run is written and whether to replace it; everything else may change a
# sample (engine, dtype, device, batch size through numerics; grade_timeout through a grade), so it is in the key


def spec_key(spec: EvalSpec) -> str:
    fields = spec.model_dump(mode="json", exclude=set(NOT_IN_KEY)) | {"protocol": PROTOCOL}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def request_seed(seed: int, item_id: str, sample: int) -> int:
    return int(hashlib.sha256(f"{seed}/{item_id}/{sample}".encode()).hexdigest()[:15], 16)


def read_samples(path: Path) -> list[dict]:
    """Complete lines only (a line cut by a crash is dropped and its group regenerated)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def check_run_dir(spec: EvalSpec) -> None:
    """Refuse an ``out`` that cannot hold this run (before any model loads): a file, a folder holding
    something else, or another run (unless ``overwrite``)."""
    out = Path(spec.out)
    if out.exists() and not out.is_dir():
        raise PrunescaleError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not spec.overwrite:
        previous = json.loads((out / SPEC).read_text()).get("key") if (out / SPEC).exists() else None
        if previous is None:
            raise PrunescaleError(f"--out {out} is not empty and holds no prunescale run (no {SPEC}); choose another "
                                  "folder or pass --overwrite to replace it")
        if previous != spec_key(spec):
            raise PrunescaleError(f"--out {out} holds a different run; pass --overwrite to replace it")


def prepare_run_dir(spec: EvalSpec) -> tuple[Path, set[tuple]]:
    """Create or resume the run folder; returns it and the (item, seed, sample) groups already done."""
    check_run_dir(spec)
    out = Path(spec.out)
    key = spec_key(spec)
    if spec.overwrite and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC).write_text(json.dumps({"key": key, **json.loads(spec.model_dump_json())}, indent=1) + "\n")
    with (out / STARTS).open("a", encoding="utf-8") as fh:  # every start's environment: a resume may differ
        fh.write(json.dumps(_numerics(environment())) + "\n")
    rows = read_samples(out / SAMPLES)
    per_group: dict[tuple, int] = defaultdict(int)
    for r in rows:
        per_group[(r["item_id"], r["seed"], r["sample"])] += 1
    done = {g for g, n in per_group.items() if n == len(spec.budgets)}
    if len(rows) != sum(per_group[g] for g in done):  # drop partial groups so they are regenerated cleanly
        keep = [r for r in rows if (r["item_id"], r["seed"], r["sample"]) in done]
        tmp = out / (SAMPLES + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, out / SAMPLES)
    return out, done


def _numerics(env: dict) -> dict:
    """What of an environment can change a sample: threads, device and the packages that compute."""
    packages = env.get("packages") or {}
    return {"threads": env.get("threads"), "device": env.get("device"), "torch": env.get("torch"),
            **{k: packages.get(k) for k in ("transformers", "vllm", "math-verify")}}


def resume_notices(out: Path) -> list[str]:
    """A run resumed in another environment than it started in: its samples mix the two."""
    path = Path(out) / STARTS
    starts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    distinct = list(dict.fromkeys(json.dumps(s, sort_keys=True) for s in starts))
    if len(distinct) < 2:
        return []
    return [f"this run was resumed in another environment than it started in ({'; '.join(distinct)}): its "
            "samples mix them, and float sums (traces) may differ between the parts"]


def _chunks(work: list, size: int) -> Iterator[list]:
    for i in range(0, len(work), size):
        yield work[i : i + size]


def grade(item: Item, result: BudgetResult, grader: Grader) -> tuple[str | None, bool, str]:
    """(extracted answer, correct, status) of one answer phase, by the item's kind; only the model's own
    text is read (the cue before it, if any, only lets a box the cue opened be closed)."""
    return kind_of(item).grade(item, result.answer_text, len(result.cue), grader)


def evaluate_run(spec: EvalSpec, model, tok, engine, log: Callable[[str], None] = print, progress: bool = True,
                 eos: tuple[int, ...] = ()) -> Path:
    """Generate, grade and summarise (model and engine already loaded; see :func:`prunescale.api.evaluate`).
    ``eos``: every id that ends a reply (the model's generation config), besides the tokenizer's EOS."""
    items = load_benchmark(spec.benchmark, spec.split, spec.limit, spec.seeds[0])
    fmt = think_format(tok, spec.model, (spec.think_open, spec.think_close) if spec.think_open else None)
    check_markers(tok, fmt)
    notices: list[str] = []  # what a user must see: logged now, kept in summary.json for the study report
    if (line := notice(fmt)) is not None:
        notices.append(line)
        log(f"note: {line}")
    out, done = prepare_run_dir(spec)
    policy = Policy(spec.budgets, spec.wait, spec.min_budget, spec.answer_budget, spec.temperature, spec.top_p,
                    spec.top_k, spec.min_p)
    mk = Markers(tok, fmt, eos)
    greedy = spec.temperature == 0
    work = [(it, s, j) for it in items for s in spec.seeds for j in range(spec.samples) if (it.id, s, j) not in done]
    label = spec.label or spec.model
    total = len(items) * len(spec.seeds) * spec.samples * len(spec.budgets)
    with (
        Grader(workers=1, timeout=spec.grade_timeout) as grader,
        progress_bar("eval", "samples × budgets", progress) as bar,
    ):
        task = bar.add_task("eval", total=total, completed=len(done) * len(spec.budgets))
        for chunk in _chunks(work, spec.batch_size * 4):  # a few batches: refills keep slots busy
            prompts = [encode_prompt(tok, render(tok, it, fmt)) for it, _, _ in chunk]
            seeds = [None if greedy else request_seed(s, it.id, j) for it, s, j in chunk]
            cues = [fmt.cue(it) for it, _, _ in chunk]
            trajs, results = sweep(engine, mk, prompts, seeds, cues, policy)
            lines = []
            for (it, s, j), traj, per_budget in zip(chunk, trajs, results):
                for r in per_budget:
                    extracted, correct, status = grade(it, r, grader)
                    lines.append(
                        {
                            "benchmark": spec.benchmark,
                            "item_id": it.id,
                            "variant": label,
                            "budget": r.budget,
                            "seed": s,
                            "sample": j,
                            "thinking_tokens": r.think_tokens,
                            "answer_tokens": len(r.answer_ids),
                            "forced_end": r.forced_end,
                            "wait_rounds": r.waits,
                            "finish_reason": r.finish,
                            "extracted": extracted,
                            "gold": it.gold,
                            "correct": correct,
                            "status": status,
                            "thinking": tok.decode(traj.kept(r.budget)),
                            "answer": r.answer_text,
                        }
                    )
            with (out / SAMPLES).open("a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(x) + "\n" for x in lines))
                fh.flush()
                os.fsync(fh.fileno())
            bar.advance(task, len(lines))
        summary = summarise(read_samples(out / SAMPLES), spec, grader, {it.id: kind_of(it) for it in items})
    first = items[0]
    summary["format"] = fmt.record() | {"eos_ids": list(mk.eos), "forced_cue_first_item": fmt.cue(first)}
    summary["prompt_first_item"] = render(tok, first, fmt)
    summary["sampling"] = {
        "engine": spec.engine,
        "greedy": greedy,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "top_k": spec.top_k,
        "min_p": spec.min_p,
        "seeds": spec.seeds,
        "samples": spec.samples,
        "request_seed": "sha256(f'{seed}/{item_id}/{sample}')[:15] as an integer; round r: seed × 1000003 + r",
    }
    notes = list(getattr(engine, "notes", []))
    fresh = ([f"engine {engine.name}: {line}" for line in notes] + grading_notices(summary, spec.grade_timeout)
             + resume_notices(out))
    for line in fresh:
        log(f"note: {line}")
    summary["engine"] = {"name": engine.name, "notes": notes}
    summary["notices"] = notices + fresh
    summary["environment"] = environment()
    tmp = out / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, out / SUMMARY)
    return out


def grading_notices(summary: dict, timeout: float) -> list[str]:
    """Answers the grader could not judge (they count as wrong), by budget, said once per status."""
    out = []
    for key, what in (("timeout_rate", f"took longer than the grader's {timeout:g} s timeout"),
                      ("grader_error_rate", "made Math-Verify raise (status grader_error)")):
        hit = [(b["budget"], round(b[key] * b["samples"])) for b in summary["budgets"] if b[key] > 0]
        if hit:
            out.append(f"{sum(n for _, n in hit)} answer(s) {what} and count as wrong (budgets "
                       f"{', '.join(str(b) for b, _ in hit)}; samples.jsonl has their status)")
    return out


def _ks(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n]


def summarise(rows: list[dict], spec: EvalSpec, grader: Grader, kinds: dict[str, Kind]) -> dict:
    """Per budget: accuracy pooled over seeds and samples with items as the unit (Wilson interval at the
    design-effect n, :mod:`prunescale.stats.intervals`); pass@k / maj@k / cov@k when several samples —
    pass@k per item from all of its samples (every seed), maj@k and cov@k per (item, seed) then averaged
    within the item — each with the same kind of interval over items."""
    by_budget: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_budget[r["budget"]].append(r)
    per_budget = []
    for b in sorted(by_budget):
        rs = by_budget[b]
        per_item: dict[str, list[float]] = defaultdict(list)
        for r in rs:
            per_item[r["item_id"]].append(float(r["correct"]))
        est = accuracy(list(per_item.values()))
        entry = {
            "budget": b,
            "samples": len(rs),
            "items": len(per_item),
            "accuracy": est.value,
            "ci95": [est.low, est.high],
            "n_eff": est.n_eff,
            "mean_thinking_tokens": sum(r["thinking_tokens"] for r in rs) / len(rs),
            "forced_end_rate": sum(r["forced_end"] for r in rs) / len(rs),
            "no_answer_rate": sum(r["status"] == "no_answer" for r in rs) / len(rs),
            "timeout_rate": sum(r["status"] == "timeout" for r in rs) / len(rs),
            "grader_error_rate": sum(r["status"] == "grader_error" for r in rs) / len(rs),
            "mean_wait_rounds": sum(r["wait_rounds"] for r in rs) / len(rs),
        }
        if spec.samples > 1:
            by_item: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
            for r in rs:
                by_item[r["item_id"]][r["seed"]].append(r)
            for k in _ks(spec.samples):
                vals: dict[str, list[list[float]]] = {"pass": [], "maj": [], "cov": []}
                for item, seeds in by_item.items():
                    kind = kinds[item]
                    same = lambda a, c, kind=kind: kind.same(a, c, grader)  # noqa: E731
                    groups = [sorted(g, key=lambda r: r["sample"]) for g in seeds.values()]
                    every = [r["correct"] for g in groups for r in g]
                    vals["pass"].append([pass_at_k(len(every), sum(every), k)])
                    vals["cov"].append([cov_at_k([r["correct"] for r in g], k) for g in groups])
                    vals["maj"].append([maj_at_k([r["extracted"] for r in g], [r["correct"] for r in g], k, same)
                                        for g in groups])
                for name, v in vals.items():
                    m = accuracy(v)
                    entry[f"{name}@{k}"] = m.value
                    entry[f"{name}@{k}_ci95"] = [m.low, m.high]
        per_budget.append(entry)
    return {
        "benchmark": spec.benchmark,
        "model": spec.model,
        "variant": spec.label or spec.model,
        "seeds": spec.seeds,
        "samples_per_item": spec.samples,
        "temperature": spec.temperature,
        "budgets": per_budget,
    }
