"""Data and models a user can name: the known models, and local copies of hub benchmarks and corpora."""

from __future__ import annotations

import json
from pathlib import Path

from prunescale import plugins
from prunescale.data.calibration import CORPORA, corpus_texts
from prunescale.data.splits import canonical_split
from prunescale.errors import PrunescaleError
from prunescale.models.registry import REGISTRY, describe
from prunescale.tts.benchmarks import BENCHMARKS, SOURCES, SPLITS, benchmark_split, load_benchmark, record


def list_models() -> list[dict]:
    """The named models with ``name``, ``path`` (None when absent), ``params``, ``source``."""
    return [describe(m) for m in REGISTRY.values()]


def fetch_data(name: str, out: Path, split: str = "test", seed: int = 0, overwrite: bool = False) -> dict:
    """Write a JSONL copy of a benchmark (records ``jsonl:PATH`` reads back as the very same items: ids,
    questions, golds and, with the same seed, shuffled choices) or of a corpus split (``{"text": …}`` rows
    that ``c4:PATH`` / ``wikitext2:PATH`` read with the corpus's own protocol). Needs the hub where the
    data comes from it."""
    plugins.load()
    out = Path(out)
    if out.exists() and not overwrite:
        raise PrunescaleError(f"--out {out} exists; pass --overwrite to replace it")
    # every row says the split it was copied from, so a copy is only ever read as that split
    if name in CORPORA:
        split = canonical_split(split)
        texts, documents = corpus_texts(name, split)
        rows, what = [{"text": t, "split": split} for t in texts], documents
    elif name in BENCHMARKS:
        split = benchmark_split(name, split)
        items = load_benchmark(name, split, None, seed)
        rows, what = [record(it, seed) | {"split": split} for it in items], f"{name} {split}"
    else:
        raise PrunescaleError(f"unknown data {name!r}; fetch one of {', '.join([*BENCHMARKS, *CORPORA])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    return {"name": name, "split": split, "rows": len(rows), "out": str(out), "documents": what}


def list_benchmarks() -> list[dict]:
    """Every benchmark with where its data comes from and the splits it has (plugins included)."""
    plugins.load()
    return [{"name": n, "source": SOURCES[n], "splits": list(SPLITS[n])} for n in BENCHMARKS] + [
        {"name": "jsonl:PATH", "source": "local file: question/answer (+ choices) per line",
         "splits": ["those its rows name in a 'split' field; without one: test"]}
    ]
