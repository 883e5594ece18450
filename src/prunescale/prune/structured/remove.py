"""Removing decoder blocks from a model, done once and completely.

Besides dropping the blocks, every place that knows the layer count must agree afterwards, or the
checkpoint breaks later in ways that are hard to trace (vLLM refusing the folder, a KV cache indexed by
stale layer numbers, sliding-window layers shifted): ``num_hidden_layers``, every per-layer list in the
config (``layer_types`` and any other list with one entry per layer), ``max_window_layers``, and each
module's ``layer_idx``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn
from transformers import PreTrainedModel

from prunescale.models.anatomy import decoder_blocks

# Config lists with one entry per layer (a length match alone is not trusted: eos_token_id lists exist).
PER_LAYER_KEYS = ("layer_types", "no_rope_layers", "sliding_window_pattern", "attention_chunk_size_per_layer",
                  "swa_layers", "rope_layers", "full_attn_layers_mask")
# Config lists of layer *indices*: remapped to the new numbering, removed layers dropped.
INDEX_KEYS = ("mlp_only_layers", "full_attention_layers", "sliding_window_layers", "global_attention_layers")


def _per_layer_lists(config, n_layers: int) -> list[str]:
    return [k for k in PER_LAYER_KEYS if isinstance(getattr(config, k, None), (list, tuple))
            and len(getattr(config, k)) == n_layers]


def remove_blocks(model: PreTrainedModel, indices: Iterable[int]) -> list[int]:
    """Delete the blocks at ``indices`` (original numbering) in place; returns the kept original indices."""
    blocks = decoder_blocks(model)
    n = len(blocks.layers)
    drop = sorted(set(indices))
    if not drop:
        return list(range(n))
    if drop[0] < 0 or drop[-1] >= n:
        raise ValueError(f"block indices must be in 0..{n - 1}, got {drop}")
    if len(drop) >= n:
        raise ValueError("cannot remove every block")
    keep = [i for i in range(n) if i not in drop]
    config = model.config
    lists = _per_layer_lists(config, n)
    new_layers = nn.ModuleList([blocks.layers[i] for i in keep])
    parent = model.get_submodule(blocks.path.rsplit(".", 1)[0]) if "." in blocks.path else model
    setattr(parent, blocks.path.rsplit(".", 1)[-1], new_layers)
    for key in lists:
        old = getattr(config, key)
        setattr(config, key, type(old)(old[i] for i in keep))
    new_index = {old: new for new, old in enumerate(keep)}
    for key in INDEX_KEYS:
        old = getattr(config, key, None)
        if isinstance(old, (list, tuple)) and all(isinstance(i, int) for i in old):
            setattr(config, key, type(old)(new_index[i] for i in old if i in new_index))
    if isinstance(getattr(config, "max_window_layers", None), int):
        config.max_window_layers = sum(1 for i in keep if i < config.max_window_layers)
    config.num_hidden_layers = len(keep)
    for new_idx, block in enumerate(new_layers):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_idx
    return keep


def block_params(model: nn.Module) -> list[int]:
    """Parameter count of each decoder block (removal fractions are computed from these)."""
    return [sum(p.numel() for p in b.parameters()) for b in decoder_blocks(model).layers]
