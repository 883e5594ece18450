"""Train the embedded tiny reasoner: ``python -m prunescale.toy.train --out DIR``.

A from-scratch ``Qwen3ForCausalLM`` (the real HF architecture, so every pruning and generation path is
exercised exactly as on Qwen3-8B) trained on :mod:`prunescale.toy.tasks`. Done once: the checkpoint
ships inside the package and CI never trains. Defaults reproduce the shipped model (seeded; ~40 min on
2 CPU cores, ~2 min on one GPU — bitwise results differ across devices, behaviour does not).

Each training text is ``prompt → <think> one line per step </think> → answer``; the prompt is
loss-masked (standard SFT). Two trace variants teach the behaviours budget forcing relies on:

* *Wait traces* (``--wait-frac``): a wrong step, then ``Wait`` and the corrected step. The loss is
  masked on the wrong value only, so the model learns to re-check after an error but never learns to
  make one.
* *No-think traces* (``--nothink-frac``): an empty thinking block, loss on the answer only, so budget 0
  is a defined "direct guess" mode (like Qwen3's hybrid thinking) instead of out-of-distribution.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import Qwen3Config, Qwen3ForCausalLM

from prunescale.toy.evaluate import accuracy, solve
from prunescale.toy.tasks import LABELS, NODES, Problem, iter_problems
from prunescale.toy.tokenizer import EOS, THINK_CLOSE, build_tokenizer, render_prompt

IGNORE = -100


def build_config(
    layers: int = 6, hidden: int = 128, intermediate: int = 512, heads: int = 4, kv_heads: int = 2
) -> Qwen3Config:
    """The tiny reasoner's architecture (vocab fixed by the tokenizer)."""
    tok = build_tokenizer()
    return Qwen3Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rope_theta=1e4,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )


def _wrong_line(p: Problem, i: int, rng: random.Random) -> tuple[str, str, str]:
    """Split step ``i`` into (head, wrong value, tail) with a value different from the gold one."""
    line = p.steps[i]
    if p.kind == "arith":
        head, gold = line.split("=")
        pool = [str(d) for d in range(10) if str(d) != gold]
        return head + "=", rng.choice(pool), "\n"
    head, gold = line.split(">")
    pool = [n for n in NODES if n != gold]
    return head + ">", rng.choice(pool), "\n"


def segments(p: Problem, rng: random.Random, wait_frac: float, nothink_frac: float) -> list[tuple[str, bool]]:
    """The training text of one problem as (text, is_trained) segments."""
    answer = [(f"{p.answer}{EOS}", True)]
    r = rng.random()
    if r < nothink_frac:
        return [(render_prompt(p.prompt, thinking=False), False), *answer]
    segs: list[tuple[str, bool]] = [(render_prompt(p.prompt), False)]
    lines = [s + "\n" for s in p.steps]
    if r < nothink_frac + wait_frac:
        i = rng.randrange(len(lines))
        head, wrong, tail = _wrong_line(p, i, rng)
        segs.append(("".join(lines[:i]) + head, True))
        segs.append((wrong, False))
        segs.append((tail + "Wait\n" + "".join(lines[i:]), True))
    else:
        segs.append(("".join(lines), True))
    segs.append((f"{THINK_CLOSE}\n\n", True))
    return segs + answer


class Batcher:
    """Endless, seeded stream of padded training batches (inputs, labels)."""

    def __init__(
        self, seed: int, batch: int, wait_frac: float, nothink_frac: float, kinds: tuple[str, ...] = ("arith", "ptr")
    ) -> None:
        self.tok = build_tokenizer()
        self.problems = iter_problems("train", seed=seed, kinds=kinds)
        self.rng = random.Random(seed)
        self.batch, self.wait_frac, self.nothink_frac = batch, wait_frac, nothink_frac
        self._cache: dict[str, list[int]] = {}

    def _encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self.tok(text, add_special_tokens=False).input_ids
            if len(self._cache) < 100_000:
                self._cache[text] = ids
        return ids

    def example(self) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        labels: list[int] = []
        for text, trained in segments(next(self.problems), self.rng, self.wait_frac, self.nothink_frac):
            seg = self._encode(text)
            ids += seg
            labels += seg if trained else [IGNORE] * len(seg)
        return ids, labels

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self.example() for _ in range(self.batch)]
        width = max(len(r[0]) for r in rows)
        pad = self.tok.pad_token_id
        x = torch.full((self.batch, width), pad, dtype=torch.long)
        y = torch.full((self.batch, width), IGNORE, dtype=torch.long)
        mask = torch.zeros((self.batch, width), dtype=torch.long)
        for b, (ids, labels) in enumerate(rows):
            x[b, : len(ids)] = torch.tensor(ids)
            y[b, : len(labels)] = torch.tensor(labels)
            mask[b, : len(ids)] = 1
        return x, y, mask


def lr_at(step: int, steps: int, warmup: int, peak: float, floor: float = 0.05) -> float:
    """Linear warm-up, then cosine decay to ``floor × peak``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def full_thinking_accuracy(model: Qwen3ForCausalLM, split: str, n: int, seed: int = 0) -> float:
    """Greedy accuracy with unlimited thinking on ``n`` problems (a quick health check)."""
    problems = [p for _, p in zip(range(n), iter_problems(split, seed=seed))]
    return accuracy(solve(model.eval(), build_tokenizer(), problems, [256], batch_size=128)[1][256])


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.init:  # continue from an earlier checkpoint (a fresh schedule; recorded in training.json)
        model = Qwen3ForCausalLM.from_pretrained(args.init, dtype=torch.float32).to(device)
        config = model.config
    else:
        config = build_config(args.layers, args.hidden, args.intermediate, args.heads, args.kv_heads)
        model = Qwen3ForCausalLM(config).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    batches = Batcher(args.seed, args.batch, args.wait_frac, args.nothink_frac, tuple(args.kinds.split(",")))
    log: list[dict] = []
    t0 = time.perf_counter()
    ema = None
    columns = (
        TextColumn("train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    plain_log = not args.quiet and not sys.stdout.isatty()  # logs to a file get plain lines instead of a bar
    with Progress(*columns, disable=args.quiet or plain_log) as progress:
        task = progress.add_task("train", total=args.steps, loss="-")
        for step in range(args.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args.steps, args.warmup, args.lr)
            x, y, mask = (t.to(device) for t in next(batches))
            loss = model(input_ids=x, attention_mask=mask, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            value = loss.item()
            ema = value if ema is None else 0.98 * ema + 0.02 * value
            if step % 50 == 0 or step == args.steps - 1:
                log.append(
                    {
                        "step": step,
                        "loss": round(value, 5),
                        "ema": round(ema, 5),
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
            progress.update(task, advance=1, loss=f"{ema:.4f}")
            if plain_log and (step % 100 == 0 or step == args.steps - 1):
                print(f"step {step} loss {ema:.4f} {time.perf_counter() - t0:.0f}s", flush=True)
    elapsed = time.perf_counter() - t0
    model.eval()
    val_acc = full_thinking_accuracy(model, "validation", args.eval_items)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu")
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(out)
    build_tokenizer().save_pretrained(out)
    stats = {
        "args": vars(args),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(elapsed, 1),
        "device": str(device),
        "final_loss_ema": round(ema or float("nan"), 5),
        "validation_full_thinking_accuracy": val_acc,
        "labels": LABELS,
        "torch": torch.__version__,
        "loss_log": log,
    }
    (out / "training.json").write_text(json.dumps(stats, indent=1))
    return stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (a Hugging Face model folder)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--wait-frac", type=float, default=0.15)
    ap.add_argument("--nothink-frac", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="start from this checkpoint folder instead of random weights")
    ap.add_argument("--kinds", default="arith,ptr", help="task kinds, alternating (ptr_shuffled: harder ptr)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--eval-items", type=int, default=200, help="validation items for the final check")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    stats = train(parse_args(argv))
    print(json.dumps({k: v for k, v in stats.items() if k != "loss_log"}))


if __name__ == "__main__":
    main()
