"""Writing a pruned model: a normal Hugging Face folder plus ``pruning_manifest.json``.

The folder loads with ``AutoModelForCausalLM.from_pretrained`` and no prunescale import. Weights are
saved as safetensors; zeros stay zeros because nothing is re-quantised on the way.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

MANIFEST = "pruning_manifest.json"


def save_checkpoint(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, manifest: dict,
    dtype: torch.dtype | None = None,
) -> Path:
    """Save ``model`` (in ``dtype``, the one its checkpoint came in, when given: pruning may compute in
    fp32, the folder stays bf16 if the model was; a zero stays zero in any float dtype)."""
    folder.mkdir(parents=True, exist_ok=True)
    if dtype is not None and next(model.parameters()).dtype != dtype:
        model.to(dtype)
    manifest["saved_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    write_manifest(folder, manifest)
    return folder


def write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
