"""Prompts and thinking formats: how each model family thinks, and how its prompt is built.

A :class:`ThinkFormat` says where the thinking block opens, what the model generates to end it, what
closes it, what a *forced* end appends, and how "Wait" is inserted. Two formats are known:

``s1`` (s1, s1.1; their own harness, simplescaling/s1 ``eval/lm-evaluation-harness``)
    The plain Qwen2.5 chat template (its default system prompt) and the generation prompt, then
    ``<|im_start|>think`` with no newline. Thinking stops at the ``<|im_start|>`` token (the start of the
    answer marker, or of any new turn). A natural end appends ``<|im_start|>answer``; a forced end appends
    a newline (unless the thinking ends a line), ``<|im_start|>answer`` and ``\\nFinal Answer:``. "Wait" is
    appended right after the kept thinking.
``think`` (Qwen3, DeepSeek-R1 distills, the tiny reasoner: ``<think>``/``</think>`` are tokens)
    The model's chat template and generation prompt, then ``<think>\\n`` unless the template opened the
    block itself. Thinking stops at ``</think>``; a natural end appends it, a forced end appends a newline
    (unless the thinking ends a line), ``</think>`` and the item's answer cue (``\\n\\nFinal Answer:
    \\boxed{`` for math). "Wait" goes on a line of its own.

How a model gets its format, first match wins: ``--think-open/--think-close`` (markers equal to a known
format's select that format whole); the model registry (``s1.1-7b`` → s1, ``qwen3-8b`` → think); a hub id
(``simplescaling/s1*`` → s1); a local folder that a pruning manifest traces to such a model, that sits in
the Hugging Face cache under such a hub id, or whose name starts with ``s1-``/``s1.1-``; ``<think>`` and
``</think>`` tokens in the vocabulary. A model with none of these gets ``<think>``/``</think>`` as plain
text, and a one-line notice says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from prunescale.errors import PrunescaleError
from prunescale.models.registry import REGISTRY
from prunescale.tts.benchmarks import Item
from prunescale.tts.kinds import kind_of


@dataclass(frozen=True)
class ThinkFormat:
    """How one model family thinks (see the module docstring)."""

    name: str
    opener: str  # appended to the generation prompt, unless the prompt already ends with it
    closer: str  # closes the block: appended after the kept thinking at every end
    stop: str  # generated text that ends thinking: the closer itself, or (s1) its first token
    forced_cue: str | None = None  # after the closer on a forced end; None: the item kind's cue
    wait_inline: bool = False  # "Wait" straight after the kept thinking (s1) rather than on its own line
    marked: bool = True  # False: the markers are plain text, not the model's own tokens
    source: str = ""  # why this format was chosen (recorded in summary.json)

    def cue(self, item: Item) -> str:
        """What follows the closer on a *forced* end: the start of an answer the grader can read (the
        format's own cue, unless the item's kind insists on its own)."""
        kind = kind_of(item)
        return self.forced_cue if self.forced_cue is not None and not kind.cue_wins else kind.cue

    def record(self) -> dict:
        return asdict(self)


FORMATS = {
    "s1": ThinkFormat("s1", "<|im_start|>think", "<|im_start|>answer", "<|im_start|>", "\nFinal Answer:", True),
    "think": ThinkFormat("think", "<think>\n", "</think>", "</think>"),
}
_S1_HUB = re.compile(r"^simplescaling/s1([.-]|$)", re.IGNORECASE)
_S1_FOLDER = re.compile(r"^s1(\.\d+)?([-_]|$)", re.IGNORECASE)
_HF_CACHE = re.compile(r"^models--([^/]+?)--(.+)$")


def family_of(model: str, depth: int = 0) -> tuple[str, str] | None:
    """(format name, why) for a model name, hub id or local folder of a known family, else None."""
    known = REGISTRY.get(model)
    if known is not None and known.think_format:
        return known.think_format, f"registry entry {model}"
    if _S1_HUB.match(model):
        return "s1", f"hub id {model}"
    path = Path(model).expanduser()
    if not path.is_dir() or depth > 8:
        return None
    manifest = path / "pruning_manifest.json"
    if manifest.exists():
        try:
            base = json.loads(manifest.read_text()).get("base_model")
        except (OSError, ValueError):
            base = None
        found = family_of(str(base), depth + 1) if base else None
        if found:
            return found[0], f"pruned from {base} ({found[1]})"
    for part in path.resolve().parts:
        m = _HF_CACHE.match(part)
        if m and _S1_HUB.match(f"{m.group(1)}/{m.group(2)}"):
            return "s1", f"hub cache of {m.group(1)}/{m.group(2)}"
    if _S1_FOLDER.match(path.resolve().name):
        return "s1", f"folder name {path.resolve().name}"
    return None


def _is_token(tok: PreTrainedTokenizerBase, text: str) -> bool:
    return len(tok(text, add_special_tokens=False).input_ids) == 1


def think_format(
    tok: PreTrainedTokenizerBase, model: str = "", override: tuple[str, str] | None = None
) -> ThinkFormat:
    """The format for this model (see the module docstring for the order of the rules)."""
    if override:
        opener, closer = override
        for fmt in FORMATS.values():
            if (opener, closer) == (fmt.opener.rstrip("\n"), fmt.closer):
                return replace(fmt, source="--think-open/--think-close")
        opener = opener if opener.endswith("\n") else opener + "\n"
        return ThinkFormat("custom", opener, closer, closer, source="--think-open/--think-close")
    found = family_of(model) if model else None
    if found:
        return replace(FORMATS[found[0]], source=found[1])
    if _is_token(tok, "<think>") and _is_token(tok, "</think>"):
        return replace(FORMATS["think"], source="<think> and </think> are tokens of the tokenizer")
    return replace(FORMATS["think"], marked=False, source="no thinking markers known for this model")


def notice(fmt: ThinkFormat) -> str | None:
    """The one line a user of a model without thinking markers must see."""
    if fmt.marked:
        return None
    return (f"this model has no thinking markers of its own; using {fmt.opener.strip()!r} / {fmt.closer!r} "
            "as plain text (override with --think-open/--think-close)")


def render(tok: PreTrainedTokenizerBase, item: Item, fmt: ThinkFormat) -> str:
    """The prompt text, ending inside an open thinking block (opened exactly once)."""
    content = kind_of(item).message(item)
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                       add_generation_prompt=True)
    else:
        text = content + "\n"
    if not text.rstrip().endswith(fmt.opener.rstrip()):
        text += fmt.opener
    return text


def encode_prompt(tok: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of a rendered prompt. A chat template writes its own BOS where the model has one, so its
    text is tokenized as it is; text without a template gets the BOS the tokenizer adds (Llama, Gemma
    need it), never a trailing EOS."""
    plain = tok(text, add_special_tokens=False).input_ids
    if getattr(tok, "chat_template", None):
        return plain
    full = tok(text).input_ids
    n = len(plain)
    for start in range(len(full) - n + 1):
        if full[start : start + n] == plain:
            return full[: start + n]
    return plain


def prompt_ids(tok: PreTrainedTokenizerBase, item: Item, fmt: ThinkFormat) -> list[int]:
    return encode_prompt(tok, render(tok, item, fmt))


def check_markers(tok: PreTrainedTokenizerBase, fmt: ThinkFormat) -> None:
    for what, text in (("closer", fmt.closer), ("stop", fmt.stop)):
        if not tok(text, add_special_tokens=False).input_ids:
            raise PrunescaleError(f"thinking {what} {text!r} tokenizes to nothing")
