"""Block-by-block calibration: the stateful part that owns hooks, devices and activations.

How it works, for any decoder in transformers 5.x without per-family code:

1. Every block is temporarily replaced by a pass-through that records the *exact* call arguments the
   model passes to it (hidden states, attention mask, rotary ``position_embeddings``, position ids,
   cache position …). Arguments can differ per block (sliding-window vs full-attention layers get
   different masks, Gemma3 different rotary tables); identical ones are stored once. We never rebuild a
   layer's signature by hand.
2. Each block in turn is moved to the compute device, handed to a visitor (which registers its own
   statistics hooks through :func:`hooked` and runs the block as often as it needs), then run once more
   so that the next block sees the outputs of this *already pruned* block (not after the last block).

Statistics passes are cut short: a visitor names the modules whose inputs it needs, and the block stops
as soon as the last of them has received its input (its own matmul and everything after it are skipped).
Wanda's pass skips the MLP down projection; SparseGPT's q,k,v pass stops at the first projection. The
cut is made only after the first sample has shown that each of those modules runs exactly once per call.
Capture runs the base model, so the vocabulary projection (a fifth of SmolLM2's compute) never runs.

The model stays on the CPU except the block being processed and the small non-block parts during
capture; activations live on the CPU. Calibration samples are un-padded sequences run one at a time,
so every token the statistics see is a real token (no padding to mask out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from prunescale.models.anatomy import Blocks, decoder_blocks
from prunescale.progress import progress_bar


def tree_to(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor in nested tuples/lists/dicts to ``device`` (other values are kept)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple):
        return tuple(tree_to(o, device) for o in obj)
    if isinstance(obj, list):
        return [tree_to(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: tree_to(v, device) for k, v in obj.items()}
    return obj


@contextmanager
def hooked(handles: Sequence[RemovableHandle] | None = None) -> Iterator[list[RemovableHandle]]:
    """Own a list of hook handles and remove every one of them on exit, exceptions included."""
    owned: list[RemovableHandle] = list(handles or [])
    try:
        yield owned
    finally:
        for h in owned:
            h.remove()


def _move_non_block_parts(model: nn.Module, blocks: Blocks, device: torch.device | str) -> None:
    """Move parameters and buffers outside the decoder blocks (embeddings, rotary, norms) to ``device``."""
    prefix = blocks.path + "."
    for name, module in model.named_modules():
        if name == blocks.path or name.startswith(prefix):
            continue
        for p in module._parameters.values():
            if p is not None:
                p.data = p.data.to(device)
        for key, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[key] = b.to(device)


@dataclass
class BlockCall:
    """One calibration sample: its hidden state (replaced block after block) and, per block, the call
    arguments the model itself passes (attention masks and rotary embeddings can differ per layer type,
    e.g. sliding-window vs full-attention layers; identical ones are stored once)."""

    hidden: torch.Tensor
    variants: list[tuple[tuple, dict]]
    per_block: list[int]

    def arguments(self, index: int) -> tuple[tuple, dict]:
        return self.variants[self.per_block[index]]


class _PassThrough(nn.Module):
    """Stands in for a block during capture: records its call and returns the hidden state unchanged."""

    def __init__(self, index: int, log: list) -> None:
        super().__init__()
        self.index, self.log = index, log

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.log.append((self.index, args, kwargs))
        return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _blocks_replaced(model: nn.Module, blocks: Blocks, log: list) -> Iterator[None]:
    parent = model.get_submodule(blocks.path.rsplit(".", 1)[0]) if "." in blocks.path else model
    attr = blocks.path.rsplit(".", 1)[-1]
    original = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList([_PassThrough(i, log) for i in range(len(original))]))
    try:
        yield
    finally:
        setattr(parent, attr, original)


def _split_hidden(args: tuple, kwargs: dict) -> tuple[torch.Tensor, tuple, dict]:
    kwargs = dict(kwargs)
    if args:
        return args[0], tuple(args[1:]), kwargs
    return kwargs.pop("hidden_states"), (), kwargs


def _signature(obj: Any) -> Any:
    """Identity of a call's arguments: the model hands equal-type layers the very same tensor objects."""
    if isinstance(obj, torch.Tensor):
        return ("t", id(obj))
    if isinstance(obj, (tuple, list)):
        return tuple(_signature(o) for o in obj)
    if isinstance(obj, dict):
        return tuple((k, _signature(v)) for k, v in sorted(obj.items()))
    return ("v", repr(obj))


def _base(model: nn.Module) -> nn.Module:
    """The model without its LM head (``PreTrainedModel.base_model``), if it holds the blocks."""
    base = getattr(model, "base_model", model)
    return base if isinstance(base, nn.Module) and base is not model else model


def capture_inputs(model: nn.Module, samples: Sequence[torch.Tensor], device: torch.device | str) -> list[BlockCall]:
    """Run each sample through the model with every block replaced by a pass-through that records the
    exact arguments the model gives it; keep block 0's hidden input and each distinct argument set (CPU)."""
    blocks = decoder_blocks(model)
    calls: list[BlockCall] = []
    log: list = []
    _move_non_block_parts(model, blocks, device)
    base = _base(model)
    try:
        with _blocks_replaced(model, blocks, log), torch.no_grad():
            for ids in samples:
                log.clear()
                base(input_ids=ids.reshape(1, -1).to(device), use_cache=False)
                if len(log) != len(blocks.layers):
                    raise RuntimeError(f"expected {len(blocks.layers)} block calls, saw {len(log)}")
                variants: list[tuple[tuple, dict]] = []
                seen: dict[Any, int] = {}
                per_block: list[int] = []
                hidden = None
                for index, args, kwargs in sorted(log, key=lambda e: e[0]):
                    h, rest, kw = _split_hidden(args, kwargs)
                    if index == 0:
                        hidden = h.to("cpu")
                    sig = _signature((rest, kw))
                    if sig not in seen:
                        seen[sig] = len(variants)
                        variants.append((tree_to(rest, "cpu"), tree_to(kw, "cpu")))
                    per_block.append(seen[sig])
                assert hidden is not None
                calls.append(BlockCall(hidden, variants, per_block))
    finally:
        log.clear()
        _move_non_block_parts(model, blocks, "cpu")
    return calls


class _Enough(Exception):
    """Raised inside a block once every module a statistics pass needs has seen its input."""


@contextmanager
def _stop_after(modules: Sequence[nn.Module]) -> Iterator[Callable[[], None]]:
    """Pre-hooks that end the forward once each of ``modules`` has been called; yields a per-call reset.

    Registered after the visitor's statistics hooks, so a module's statistics are recorded before the
    forward stops at it."""
    pending: set[int] = set()

    def hook(m: nn.Module, _args: tuple) -> None:
        pending.discard(id(m))
        if not pending:
            raise _Enough

    def reset() -> None:
        pending.update(id(m) for m in modules)

    with hooked([m.register_forward_pre_hook(hook) for m in modules]):
        yield reset


def _called_once(block: nn.Module, modules: Sequence[nn.Module], call: Callable[[], object]) -> bool:
    """Run ``call`` once, counting calls of ``modules``: may a pass safely stop at their first call?"""
    counts = {id(m): 0 for m in modules}

    def count(m: nn.Module, _args: tuple) -> None:
        counts[id(m)] += 1

    with hooked([m.register_forward_pre_hook(count) for m in modules]):
        call()
    return all(c == 1 for c in counts.values())


def run_block(
    block: nn.Module,
    calls: Sequence[BlockCall],
    device: torch.device | str,
    index: int,
    stop_after: Sequence[nn.Module] = (),
) -> list[torch.Tensor]:
    """Run ``block`` (at position ``index``) on every captured call; outputs come back on the CPU.

    With ``stop_after`` (a statistics pass) each call ends once all of those modules have been called,
    and nothing is returned."""

    def one(c: BlockCall) -> torch.Tensor:
        args, kwargs = c.arguments(index)
        out = block(c.hidden.to(device), *tree_to(args, device), **tree_to(kwargs, device))
        return out[0] if isinstance(out, tuple) else out

    with torch.no_grad():
        if not stop_after:
            return [one(c).to("cpu") for c in calls]
        if not calls:
            return []
        if not _called_once(block, stop_after, lambda: one(calls[0])):
            for c in calls[1:]:  # some module runs more (or less) than once per call: no early stop
                one(c)
            return []
        with _stop_after(stop_after) as reset:
            for c in calls[1:]:
                reset()
                with suppress(_Enough):
                    one(c)
    return []


Forward = Callable[..., None]
Visitor = Callable[[int, nn.Module, Forward], None]


def for_each_block(
    model: nn.Module,
    samples: Sequence[torch.Tensor],
    visit: Visitor,
    device: torch.device | str = "cpu",
    progress: bool = True,
    description: str = "pruning",
) -> dict:
    """Calibrate block by block: ``visit(index, block, forward)`` may prune ``block``; ``forward()`` runs
    the block over all calibration inputs (so the visitor's hooks see them); ``forward(stop_after=mods)``
    stops each call once all of ``mods`` have received their input. Returns timing stats."""
    t0 = time.perf_counter()
    blocks = decoder_blocks(model)
    calls = capture_inputs(model, samples, device)
    forwards = 0
    with progress_bar(description, "blocks", progress) as bar:
        task = bar.add_task(description, total=len(blocks.layers))
        for i, block in enumerate(blocks.layers):
            block.to(device)
            try:

                def forward(
                    block: nn.Module = block, index: int = i, stop_after: Sequence[nn.Module] = ()
                ) -> None:
                    nonlocal forwards
                    forwards += 1
                    run_block(block, calls, device, index, stop_after)

                visit(i, block, forward)
                if i + 1 < len(blocks.layers):  # the last block's outputs feed no other block
                    forwards += 1
                    for c, h in zip(calls, run_block(block, calls, device, i)):
                        c.hidden = h
            finally:
                block.to("cpu")
            bar.advance(task)
    return {"blocks": len(blocks.layers), "block_forwards": forwards, "seconds": time.perf_counter() - t0}
