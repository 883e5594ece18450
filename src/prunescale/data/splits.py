"""What a split is, for every path that reads data: calibration, tuning, LayerIF, perplexity and evaluation.

``train``, ``validation`` (also called ``heldout``) and ``test``. A source either says which split each of
its rows belongs to (a ``split`` field per JSONL row; a generator's own disjoint splits), or validation is
carved from its train data: a row is validation when sha256 of its *key* mod 10 is 0, and then it is not
train. The key is the document a calibration source makes of the row (its text, or question and answer
joined by a newline), or its question where it has nothing else, so a GSM8K problem is in the same split
whether it is read as a calibration document, as a prompt for self-generated traces or as an evaluation
item. Validation is never carved from test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

from prunescale.errors import PrunescaleError

SPLITS = ("train", "validation", "test")
ALIASES = {"heldout": "validation"}
VALIDATION_SHARE = 10  # one row in ten (by a hash of its key) is validation, never train
CARVE = f"one document in {VALIDATION_SHARE} by sha256 of its text"
QUESTION_KEYS = ("question", "problem", "prompt")

T = TypeVar("T")


def canonical_split(split: str) -> str:
    """``heldout`` → ``validation``; an unknown split is a one-line error."""
    name = ALIASES.get(split, split)
    if name not in SPLITS:
        raise PrunescaleError(f"unknown split {split!r}; use train, validation (or heldout) or test")
    return name


def is_validation(key: str) -> bool:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % VALIDATION_SHARE == 0


DOCUMENT_KEYS = (("text",), ("question", "answer"), ("prompt", "response"))


def row_key(row: dict) -> str:
    """The text a row is carved by: the document a calibration source makes of it (``text``, else
    question + answer, else prompt + response, joined by a newline), else its question alone (a file of
    questions only), so one row is in one split whichever path reads it."""
    for keys in DOCUMENT_KEYS:
        if all(isinstance(row.get(k), str) for k in keys):
            return "\n".join(row[k] for k in keys)
    for k in QUESTION_KEYS:
        if isinstance(row.get(k), str):
            return row[k]
    return ""


def carve(rows: Sequence[T], split: str, key: Callable[[T], str] = str) -> list[T]:
    """The train or validation part of train data (validation: :func:`is_validation` of each row's key)."""
    return [r for r in rows if is_validation(key(r)) == (split == "validation")]


def declared_splits(rows: Sequence[dict], where: str) -> bool:
    """Whether a file's rows say their split (a ``split`` field). Every row or none: a file where only some
    rows say theirs is an error, as is a split name that is not one."""
    have = [r for r in rows if "split" in r]
    if not have:
        return False
    if len(have) != len(rows):
        raise PrunescaleError(f"{where}: {len(rows) - len(have)} of {len(rows)} rows have no 'split' field; give "
                              "every row one (train, validation or test) or none")
    for r in have:
        if not isinstance(r["split"], str) or ALIASES.get(r["split"], r["split"]) not in SPLITS:
            raise PrunescaleError(f"{where}: 'split' must be train, validation (or heldout) or test, got "
                                  f"{r['split']!r}")
    return True


def rows_of_split(rows: Sequence[dict], split: str, where: str) -> list[dict]:
    """The rows a file declares to be of ``split`` (a declared file; see :func:`declared_splits`); none is an
    error naming the splits the file has."""
    split = canonical_split(split)
    chosen = [r for r in rows if ALIASES.get(r["split"], r["split"]) == split]
    if not chosen:
        has = sorted({ALIASES.get(r["split"], r["split"]) for r in rows})
        raise PrunescaleError(f"{where} has no rows of split {split!r}; its rows are {', '.join(has)}")
    return chosen
