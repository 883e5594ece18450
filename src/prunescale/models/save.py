"""Writing a pruned model: a normal Hugging Face folder plus ``pruning_manifest.json``.

The folder loads with ``AutoModelForCausalLM.from_pretrained`` and no prunescale import. Weights are
saved as safetensors; zeros stay zeros because nothing is re-quantised on the way.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

MANIFEST = "pruning_manifest.json"


def save_checkpoint(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, manifest: dict
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None
