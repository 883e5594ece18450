"""C4 and WikiText-2, the corpora pruning papers calibrate on and report perplexity on, read as those papers
read them: a split's texts from the hub (:mod:`prunescale.data.hub`) or from a local copy written by
``prunescale data fetch``, Wanda's and SparseGPT's calibration samplers, and the reference perplexity
protocol of a test split. Results are comparable with the papers' only if the windows are cut exactly as
theirs are, so each sampler is the reference rule written out (tests compare them against it).

The window helpers (:func:`special_prefix`, :func:`cut`) live here because every text source's windows,
:mod:`prunescale.data.calibration`'s included, start from the BOS the same way.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from prunescale.data.hub import HUB, hub_rows
from prunescale.data.splits import declared_splits, rows_of_split
from prunescale.errors import PrunescaleError

CORPORA = ("c4", "wikitext2")
UNDECLARED = "no split recorded"  # a corpus copy from before `data fetch` wrote each row's split
C4_VALIDATION_DOCS, C4_WINDOWS = 1100, 256  # the reference perplexity protocol on C4's validation shard


def special_prefix(tok: PreTrainedTokenizerBase) -> list[int]:
    """The ids the tokenizer writes before a text of its own accord (Llama's and Gemma's BOS; nothing for
    Qwen or GPT-2): text a model reads without a chat template starts with them, as in use."""
    plain = tok("x", add_special_tokens=False).input_ids
    full = tok("x").input_ids
    n = len(full) - len(plain)
    return list(full[:n]) if n > 0 and full[n:n + len(plain)] == plain else []


def cut(stream: list[int], seqlen: int, prefix: list[int], count: int | None = None) -> list[torch.Tensor]:
    """Consecutive windows of ``seqlen`` tokens from a token stream, each ``prefix`` (the BOS) + the next
    ``seqlen − len(prefix)`` tokens: ``count`` windows, or as many as the stream fills."""
    step = seqlen - len(prefix)
    n = len(stream) // step if count is None else count
    return [torch.tensor(prefix + stream[k * step : (k + 1) * step], dtype=torch.long) for k in range(n)]


def corpus_texts(kind: str, split: str, location: str = "") -> tuple[list[str], str]:
    """A corpus split's texts (rows' ``text``) from the hub, or from a local copy written by
    ``prunescale data fetch`` (``c4:PATH``), and which they are."""
    if location:
        path = Path(location).expanduser()
        raw = path.read_bytes()
        rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        digest = hashlib.sha256(raw).hexdigest()[:16]
        if declared_splits(rows, location):  # `prunescale data fetch` writes the split it copied
            rows = rows_of_split(rows, split, location)
            return [r["text"] for r in rows], f"local copy {location} (sha256 {digest}) of {kind}'s {split} split"
        return [r["text"] for r in rows], (f"local copy {location} (sha256 {digest}) of {kind}, {UNDECLARED}; "
                                           f"used as its {split} split")
    spec = HUB[kind]
    rows = hub_rows(kind, split, f"--calib/--data {kind}:PATH")
    where = spec.files.get(split) or f"split {spec.splits[split]}"
    return [r["text"] for r in rows], (f"{spec.repo} {spec.config or ''} {where} at revision "
                                       f"{spec.revision or 'main'}").replace("  ", " ")


def c4_windows(texts: list[str], tok: PreTrainedTokenizerBase, nsamples: int, seqlen: int,
               seed: int) -> list[torch.Tensor]:
    """Wanda's and SparseGPT's C4 sampler: seeded, draw a document until one is longer than ``seqlen``
    tokens (tokenized as they tokenize it), then one random window of it. With a BOS, the window's first
    token is the BOS (the model always reads text from its BOS)."""
    rng = random.Random(seed)
    prefix = special_prefix(tok)
    out = []
    for _ in range(nsamples):
        for _attempt in range(100 * len(texts)):
            ids = tok(texts[rng.randint(0, len(texts) - 1)]).input_ids
            if len(ids) > seqlen:
                break
        else:
            raise PrunescaleError(f"no C4 document is longer than {seqlen} tokens")
        i = rng.randint(0, len(ids) - seqlen - 1)
        window = ids[i : i + seqlen]
        out.append(torch.tensor(prefix + window[len(prefix):] if prefix else window, dtype=torch.long))
    return out


def wikitext_windows(texts: list[str], tok: PreTrainedTokenizerBase, nsamples: int, seqlen: int,
                     seed: int) -> list[torch.Tensor]:
    """SparseGPT's WikiText-2 calibration sampler: the split's rows joined by a space, seeded random
    windows of ``seqlen`` (a BOS first where the tokenizer writes one)."""
    rng = random.Random(seed)
    prefix = special_prefix(tok)
    stream = tok(" ".join(texts), add_special_tokens=False).input_ids
    step = seqlen - len(prefix)
    if len(stream) <= step:
        raise PrunescaleError(f"wikitext2 is too short for windows of {seqlen} tokens")
    out = []
    for _ in range(nsamples):
        i = rng.randint(0, len(stream) - step - 1)
        out.append(torch.tensor(prefix + stream[i : i + step], dtype=torch.long))
    return out


def perplexity_windows(kind: str, texts: list[str], tok: PreTrainedTokenizerBase, seqlen: int,
                       limit: int | None = None) -> tuple[list[torch.Tensor], str]:
    """The standard perplexity protocol of a corpus's test split, and its description: WikiText-2's rows
    joined by "\\n\\n", C4's first 1100 validation documents joined by a space (first 256 windows), cut into
    non-overlapping windows of ``seqlen`` (each from the BOS where the tokenizer writes one), every
    predicted token counted. ``limit`` keeps the first windows."""
    prefix = special_prefix(tok)
    if kind == "wikitext2":
        stream = tok("\n\n".join(texts), add_special_tokens=False).input_ids
        count, rule = None, 'rows joined by "\\n\\n", non-overlapping windows'
    else:
        stream = tok(" ".join(texts[:C4_VALIDATION_DOCS]), add_special_tokens=False).input_ids
        count, rule = C4_WINDOWS, f"first {C4_VALIDATION_DOCS} documents joined by a space, first {C4_WINDOWS} windows"
        count = min(count, len(stream) // (seqlen - len(prefix)))
    samples = cut(stream, seqlen, prefix, count)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise PrunescaleError(f"{kind}: not one window of {seqlen} tokens")
    return samples, rule + (f" of {seqlen} tokens, each from the BOS" if prefix else f" of {seqlen} tokens")
