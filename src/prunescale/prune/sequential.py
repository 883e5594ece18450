"""Block-by-block calibration: the stateful part that owns hooks, devices and activations.

How it works, for any decoder in transformers 5.x without per-family code:

1. A pre-forward hook on block 0 captures the *exact* call arguments the model passes to its blocks
   (hidden states, attention mask, rotary ``position_embeddings``, position ids, cache position …) and
   aborts the forward. We never rebuild a layer's signature by hand.
2. Each block in turn is moved to the compute device, handed to a visitor (which registers its own
   statistics hooks through :func:`hooked` and runs the block as often as it needs), then run once more
   so that the next block sees the outputs of this *already pruned* block.

The model stays on the CPU except the block being processed and the small non-block parts during
capture; activations live on the CPU. Calibration samples are un-padded sequences run one at a time,
so every token the statistics see is a real token (no padding to mask out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from prunescale.models.anatomy import Blocks, decoder_blocks


class _Captured(Exception):
    """Raised by the capture hook to stop the forward pass once block 0's inputs are known."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        super().__init__("captured")
        self.args, self.kwargs = args, kwargs


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
    """One calibration sample's arguments to a block; ``hidden`` is replaced block after block."""

    hidden: torch.Tensor
    args: tuple
    kwargs: dict


def capture_inputs(model: nn.Module, samples: Sequence[torch.Tensor], device: torch.device | str) -> list[BlockCall]:
    """Run the model up to block 0 for each sample and keep the block's call arguments on the CPU."""
    blocks = decoder_blocks(model)

    def grab(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        raise _Captured(args, kwargs)

    calls: list[BlockCall] = []
    _move_non_block_parts(model, blocks, device)
    try:
        with hooked([blocks.layers[0].register_forward_pre_hook(grab, with_kwargs=True)]), torch.no_grad():
            for ids in samples:
                try:
                    model(input_ids=ids.reshape(1, -1).to(device), use_cache=False)
                except _Captured as cap:
                    args, kwargs = cap.args, dict(cap.kwargs)
                    if args:
                        hidden, rest = args[0], tuple(args[1:])
                    else:
                        hidden, rest = kwargs.pop("hidden_states"), ()
                    calls.append(BlockCall(hidden.to("cpu"), tree_to(rest, "cpu"), tree_to(kwargs, "cpu")))
                else:  # pragma: no cover - the hook always fires for a decoder
                    raise RuntimeError("block 0 was never called during calibration capture")
    finally:
        _move_non_block_parts(model, blocks, "cpu")
    return calls


def run_block(block: nn.Module, calls: Sequence[BlockCall], device: torch.device | str) -> list[torch.Tensor]:
    """Run ``block`` on every captured call; outputs come back on the CPU."""
    outs = []
    with torch.no_grad():
        for c in calls:
            out = block(c.hidden.to(device), *tree_to(c.args, device), **tree_to(c.kwargs, device))
            out = out[0] if isinstance(out, tuple) else out
            outs.append(out.to("cpu"))
    return outs


Visitor = Callable[[int, nn.Module, Callable[[], None]], None]


def for_each_block(
    model: nn.Module,
    samples: Sequence[torch.Tensor],
    visit: Visitor,
    device: torch.device | str = "cpu",
    progress: bool = True,
    description: str = "pruning",
) -> dict:
    """Calibrate block by block: ``visit(index, block, forward)`` may prune ``block``; ``forward()`` runs
    the block over all calibration inputs (so the visitor's hooks see them). Returns timing stats."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    t0 = time.perf_counter()
    blocks = decoder_blocks(model)
    calls = capture_inputs(model, samples, device)
    forwards = 0
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=len(blocks.layers))
        for i, block in enumerate(blocks.layers):
            block.to(device)
            try:

                def forward(block: nn.Module = block) -> None:
                    nonlocal forwards
                    forwards += 1
                    run_block(block, calls, device)

                visit(i, block, forward)
                forwards += 1
                for c, h in zip(calls, run_block(block, calls, device)):
                    c.hidden = h
            finally:
                block.to("cpu")
            bar.advance(task)
    return {"blocks": len(blocks.layers), "block_forwards": forwards, "seconds": time.perf_counter() - t0}
