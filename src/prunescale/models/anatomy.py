"""Where things are inside a decoder-only causal LM, found structurally rather than per family.

The decoder blocks are the longest ``nn.ModuleList`` whose members all share one class (``model.layers``
for Llama/Qwen/Mistral/Gemma, ``transformer.h`` for GPT-2 style); prunable modules are the ``nn.Linear``
layers inside the blocks. Embeddings and ``lm_head`` are outside the blocks and so never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Blocks:
    path: str  # dotted name of the ModuleList, e.g. "model.layers"
    layers: nn.ModuleList

    def name(self, index: int, sub: str = "") -> str:
        return f"{self.path}.{index}" + (f".{sub}" if sub else "")


def decoder_blocks(model: nn.Module) -> Blocks:
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            kinds = {type(m) for m in module}
            if len(kinds) == 1 and (best is None or len(module) > best[0]):
                best = (len(module), name, module)
    if best is None:
        raise ValueError(f"no decoder blocks found in {type(model).__name__}")
    return Blocks(best[1], best[2])


FINAL_NORMS = ("norm", "final_layernorm", "ln_f", "final_layer_norm")


def final_norm(model: nn.Module) -> nn.Module | None:
    """The norm the model applies to the last block's output (beside the blocks: ``model.norm`` for
    Llama/Qwen/Mistral/Gemma, ``transformer.ln_f`` for GPT-2 style), or None."""
    path = decoder_blocks(model).path
    parent = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
    return next((getattr(parent, n) for n in FINAL_NORMS if isinstance(getattr(parent, n, None), nn.Module)), None)


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    """The block's Linear layers by their name inside the block (e.g. ``self_attn.q_proj``)."""
    return {name: m for name, m in block.named_modules() if isinstance(m, nn.Linear)}


def prunable_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every Linear inside a decoder block, by its full module name."""
    blocks = decoder_blocks(model)
    out: dict[str, nn.Linear] = {}
    for i, block in enumerate(blocks.layers):
        for sub, lin in block_linears(block).items():
            out[blocks.name(i, sub)] = lin
    return out


# Order in which a block's Linears see their inputs; SparseGPT's sequential mode prunes group by group so
# later groups calibrate on the outputs of already-pruned earlier ones. Unknown names form a last group.
SEQUENTIAL_GROUPS = (
    ("q_proj", "k_proj", "v_proj", "qkv_proj", "query_key_value", "c_attn", "Wqkv"),
    ("o_proj", "out_proj", "dense", "c_proj"),
    ("gate_proj", "up_proj", "gate_up_proj", "fc1", "w1", "w3", "c_fc"),
    ("down_proj", "fc2", "w2"),
)


def sequential_groups(names: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[] for _ in range(len(SEQUENTIAL_GROUPS) + 1)]
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        idx = next((i for i, g in enumerate(SEQUENTIAL_GROUPS) if leaf in g), len(SEQUENTIAL_GROUPS))
        groups[idx].append(name)
    return [g for g in groups if g]
