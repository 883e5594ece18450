"""Reference data from the Hugging Face hub: benchmarks and calibration corpora, by name.

Every hub dataset prunescale reads is listed in :data:`HUB` with its repository, configuration, revision
and which of its splits (or files) stand for our train / validation / test. Rows come through one
function, :func:`hub_rows` (``datasets.load_dataset``, cached where Hugging Face caches, no remote code),
so a local copy written by ``prunescale data fetch`` and a fixture in the same schema go through the
same mapping from rows to items. Without the ``hub`` extra, offline, or for a gated dataset whose terms
were not accepted, the error is one line naming the dataset id and the local alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prunescale.errors import PrunescaleError


@dataclass(frozen=True)
class HubData:
    repo: str
    config: str | None = None
    splits: dict[str, str] = field(default_factory=dict)  # our split → the dataset's split
    files: dict[str, str] = field(default_factory=dict)  # our split → one data file (large corpora)
    revision: str | None = None
    gated: bool = False
    what: str = ""


HUB: dict[str, HubData] = {
    "aime24": HubData("HuggingFaceH4/aime_2024", splits={"test": "train"}, what="AIME 2024, 30 problems"),
    "amc23": HubData("zwhe99/amc23", splits={"test": "test"}, what="AMC 2023, 40 problems"),
    "math500": HubData("HuggingFaceH4/MATH-500", splits={"test": "test"}, what="MATH-500"),
    "gpqa_diamond": HubData("Idavidrein/gpqa", "gpqa_diamond", splits={"test": "train"}, gated=True,
                            what="GPQA Diamond, 198 questions"),
    "gsm8k": HubData("openai/gsm8k", "main", splits={"train": "train", "test": "test"}, what="GSM8K"),
    # Wanda and SparseGPT calibrate on C4's first English train shard and report perplexity on its first
    # validation shard; our validation split is the second train shard (train data, never the reported one)
    "c4": HubData("allenai/c4", files={"train": "en/c4-train.00000-of-01024.json.gz",
                                       "validation": "en/c4-train.00001-of-01024.json.gz",
                                       "test": "en/c4-validation.00000-of-00008.json.gz"}, what="C4 (en)"),
    "wikitext2": HubData("Salesforce/wikitext", "wikitext-2-raw-v1",
                         splits={"train": "train", "validation": "validation", "test": "test"},
                         what="WikiText-2 (raw)"),
}

FETCH_HINT = ("on a machine that reaches the hub, `prunescale data fetch {name} --out {name}.jsonl` writes a copy "
              "that {local} reads offline")


def _load(spec: HubData, split: str):
    """The dataset of one split (``datasets.load_dataset``; the one place that reaches the hub)."""
    from datasets import load_dataset  # optional dependency (the hub extra)

    if spec.files:  # one shard of a large corpus, as Wanda's and SparseGPT's code load C4
        return load_dataset(spec.repo, data_files={"rows": spec.files[split]}, split="rows", revision=spec.revision)
    return load_dataset(spec.repo, spec.config, split=spec.splits[split], revision=spec.revision)


LOADER: Callable = _load  # tests put fixture files in the hub's schema here


def hub_rows(name: str, split: str, local: str = "jsonl:PATH") -> list[dict]:
    """Rows of a registered hub dataset's split, as dicts in the dataset's own schema."""
    spec = HUB[name]
    if split not in (spec.files or spec.splits):
        raise PrunescaleError(f"{name} ({spec.repo}) has splits {', '.join(spec.files or spec.splits)}, not {split!r}")
    hint = FETCH_HINT.format(name=name, local=local)
    try:
        import datasets  # noqa: F401  (optional dependency: the hub extra; checked before the loader runs)
    except ImportError:
        raise PrunescaleError(f"{name} comes from the hub ({spec.repo}), which needs the hub extra: "
                              f"pip install 'prunescale[hub]'; or, {hint}") from None
    try:
        data = LOADER(spec, split)
    except Exception as exc:  # offline, gated, renamed: each gets its own line
        text = f"{type(exc).__name__}: {exc}"
        if spec.gated and any(w in text.lower() for w in ("gated", "401", "403", "authenticat", "access")):
            raise PrunescaleError(f"{spec.repo} is gated: accept its terms at https://huggingface.co/datasets/"
                                  f"{spec.repo} and log in (`hf auth login`); or, {hint}") from None
        raise PrunescaleError(f"cannot load {spec.repo} from the hub ({type(exc).__name__}; offline?); "
                              f"{hint}") from None
    return [dict(r) for r in data]
