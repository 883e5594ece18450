"""Scripted checkpoints: real Hugging Face models, in the real reasoning formats, whose output we choose.

The tiny reasoner has the easy format (single-token ``<think>`` markers, no system prompt). The models
users study do not: s1.1 thinks between ``<|im_start|>think`` and ``<|im_start|>answer`` under the plain
Qwen2.5 template, Qwen3 writes ``<think>`` itself, a Llama base model has no markers and needs its BOS.
A scripted checkpoint is a genuine ``Qwen2ForCausalLM`` / ``Qwen3ForCausalLM`` / ``LlamaForCausalLM``
folder (loads in transformers and in vLLM) with the family's tokenizer layout and chat template, built
so that its next token depends on the current token only:

* one decoder block whose attention and MLP output projections are zero, so the residual stream carries
  the token's embedding unchanged to the final norm;
* the embedding is the identity (hidden size = vocabulary size), so the normed state is a scaled one-hot;
* the LM head is a next-token table: logit 30 for the scripted successor, 0 for the rest; a coin has two
  successors, the second 0.3 below the first (57 : 43 under sampling at T = 1, no tie for greedy decoding).

Scripted behaviour (the prompt's last token starts it; every appended marker leads on):

    prompt … <opener> → T1 T2 … TN → the family's stop (or EOS inside thinking, or back to T1: never closes)
    "Wait" (s1, appended inline) or "Wait\\n" (others) → T1 … TN again, so every Wait round re-thinks N tokens
    natural end: <closer> → "\\n" / "\\n\\n" → \\boxed{42} → EOS;   forced end: … cue → (\\boxed{)42} → EOS

T1 … TN are the capital letters A, B, C, … (N ≤ 26). Building one takes well under a second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

from prunescale.tts.benchmarks import Item
from prunescale.tts.forcing import Markers, Policy, eos_ids, sweep
from prunescale.tts.prompting import prompt_ids, think_format

LETTERS = [chr(ord("A") + i) for i in range(26)]
CHARS = [chr(i) for i in range(32, 127)] + ["\n"]
HIGH = 30.0  # logit of a scripted successor (every other token has 0)
COIN = 0.3  # a coin's second side is this much less likely (≈ 43 %), so greedy decoding has no tie to break

# The plain Qwen2.5 template as s1.1 ships it (its default system prompt when none is given), for the
# non-tool path: the text it renders for a user message and the generation prompt is the real one's.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (message['role'] == 'system' and loop.first) -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
# Qwen3's template on the same path: no default system prompt; the generation prompt does not open the
# thinking block (the model writes <think> itself), unless enable_thinking=False writes an empty one.
QWEN3_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)


@dataclass(frozen=True)
class Family:
    arch: str  # qwen2 | qwen3 | llama
    specials: tuple[str, ...]
    added: tuple[str, ...]  # tokens that are not special (Qwen3's <think>, </think>)
    words: tuple[str, ...]
    eos: str
    pad: str
    bos: str | None
    template: str | None
    gen_eos: tuple[str, ...]  # generation_config.eos_token_id
    opener_last: str  # the last token of a rendered prompt (the opener's)
    stop: tuple[str, ...]  # the tokens the model writes to end its thinking
    after_closer: str  # what it writes after the closer a natural end appends


FAMILIES = {
    "s1": Family("qwen2", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), (),
                 ("think", "answer", "Wait", "\n\n", "system", "user", "assistant"), "<|im_end|>", "<|endoftext|>",
                 None, QWEN25_TEMPLATE, ("<|im_end|>", "<|endoftext|>"), "think", ("<|im_start|>",), "\n"),
    "qwen3": Family("qwen3", ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), ("<think>", "</think>"),
                    ("Wait", "\n\n", "system", "user", "assistant"), "<|im_end|>", "<|endoftext|>", None,
                    QWEN3_TEMPLATE, ("<|im_end|>", "<|endoftext|>"), "\n", ("</think>",), "\n\n"),
    "llama": Family("llama", ("<s>", "</s>", "<unk>"), (), ("Wait", "\n\n"), "</s>", "</s>", "<s>", None,
                    ("</s>",), "\n", tuple("</think>"), "\n\n"),
}


@dataclass(frozen=True)
class Script:
    """What a scripted checkpoint does (see the module docstring)."""

    family: str
    think: int = 5  # thinking tokens per round before it ends its thinking
    end: str = "close"  # close | eos (EOS inside the thinking block) | never
    answer: str = "42"
    branch_from: int | None = None  # a coin from thinking token i on: think on, or end the thinking (43 %)
    answer_alt: str | None = None  # a coin: the answer's last digit, or this one (43 %)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; choose one of {', '.join(FAMILIES)}")
        if not 1 <= self.think <= len(LETTERS) or self.end not in ("close", "eos", "never"):
            raise ValueError(f"bad script {self}")


def build_tokenizer(family: Family):
    vocab: dict[str, int] = {}
    for t in (*family.specials, *family.added, *family.words, *CHARS):
        vocab.setdefault(t, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=family.specials[-1] if family.bos else family.pad))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in family.specials])
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t in (*family.added, *family.words)])
    if family.bos:  # a Llama tokenizer puts its BOS in front of every text it encodes
        tk.post_processor = processors.TemplateProcessing(single=f"{family.bos} $A",
                                                          special_tokens=[(family.bos, vocab[family.bos])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=family.eos, pad_token=family.pad,
                                  bos_token=family.bos, unk_token="<unk>" if family.bos else None,
                                  model_max_length=1024)
    if family.template:
        tok.chat_template = family.template
    return tok


def transitions(script: Script) -> dict[str, list[str]]:
    """Token → its scripted successors (one: deterministic; two: a coin, the first more likely)."""
    fam = FAMILIES[script.family]
    chain = LETTERS[: script.think]
    end = {"close": fam.stop[0], "eos": fam.eos, "never": chain[0]}[script.end]
    nxt: dict[str, list[str]] = {fam.opener_last: [chain[0]], "Wait": [chain[0]]}
    for i, t in enumerate(chain):
        follow = chain[i + 1] if i + 1 < len(chain) else end
        coin = script.branch_from is not None and i + 1 >= script.branch_from and i + 1 < len(chain)
        nxt[t] = [follow, fam.stop[0]] if coin and script.end == "close" else [follow]
    for a, b in zip(fam.stop, fam.stop[1:]):  # a multi-token stop, token after token
        nxt[a] = [b]
    nxt[fam.stop[-1] if len(fam.stop) > 1 else ("answer" if script.family == "s1" else fam.stop[0])] = [
        fam.after_closer
    ]
    box = ["\\", "b", "o", "x", "e", "d", "{", *script.answer, "}"]
    nxt[fam.after_closer] = [box[0]]
    nxt[":"] = [" "]  # s1's forced cue ends "Final Answer:"
    nxt[" "] = [box[0]]
    for a, b in zip(box, box[1:]):
        nxt.setdefault(a, []).append(b)
    nxt["}"] = [fam.eos]
    if script.answer_alt is not None:
        nxt[box[-3] if len(script.answer) > 1 else "{"].append(script.answer_alt)
        nxt[script.answer_alt] = ["}"]
    return nxt


def build(script: Script, folder: Path, hidden: int = 128) -> Path:
    """Write the checkpoint folder (config, safetensors, tokenizer, chat template, generation config and
    the script as ``scripted.json``)."""
    fam = FAMILIES[script.family]
    tok = build_tokenizer(fam)
    vocab = tok.get_vocab()
    if len(vocab) > hidden:
        raise ValueError(f"vocabulary of {len(vocab)} tokens needs hidden ≥ that, got {hidden}")
    ids = lambda t: vocab[t]  # noqa: E731
    common = dict(vocab_size=hidden, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  tie_word_embeddings=False, eos_token_id=ids(fam.eos), pad_token_id=ids(fam.pad),
                  bos_token_id=ids(fam.bos) if fam.bos else None, rms_norm_eps=1e-6)
    cls = {"qwen2": Qwen2Config, "qwen3": Qwen3Config, "llama": LlamaConfig}[fam.arch]
    config = cls(**common, **({"head_dim": hidden // 4} if fam.arch == "qwen3" else {}))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    table = torch.zeros(hidden, hidden)  # (next token, current token)
    table[ids(fam.eos), :] = HIGH  # every token without a script ends the reply
    for cur, follows in transitions(script).items():
        table[:, ids(cur)] = 0.0
        for k, f in enumerate(follows):
            table[ids(f), ids(cur)] = HIGH - COIN * k
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(torch.eye(hidden))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        model.lm_head.weight.copy_(table / hidden**0.5)  # the normed state is √hidden × one-hot
    model.generation_config = GenerationConfig(eos_token_id=[ids(t) for t in fam.gen_eos], pad_token_id=ids(fam.pad),
                                               bos_token_id=ids(fam.bos) if fam.bos else None)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "scripted.json").write_text(json.dumps(asdict(script), indent=1) + "\n")
    return folder


QUESTION = "What is 6 times 7?"  # the item every scripted check asks (gold 42)


def sweep_rows(engine, folder: Path, budgets, seeds=(None,), temperature: float = 0.0, **policy) -> list[list[tuple]]:
    """Run the budget sweep of :mod:`prunescale.tts.forcing` on ``engine`` for the scripted question, one
    trajectory per seed, with the folder's own format; returns what each sample is made of, per trajectory
    and budget: (budget, kept thinking text, thinking tokens, forced end, Wait rounds, answer ids, cue).
    Shared by the hf tests, the opt-in vLLM tests and the GPU smoke check, so all compare the same thing."""
    tok = AutoTokenizer.from_pretrained(folder)
    fmt = think_format(tok, str(folder))
    mk = Markers(tok, fmt, eos_ids(GenerationConfig.from_pretrained(folder)))
    item = Item("q", QUESTION, "42", "math")
    pol = Policy(list(budgets), answer_budget=16, temperature=temperature, **policy)
    trajs, results = sweep(engine, mk, [prompt_ids(tok, item, fmt)] * len(seeds), list(seeds),
                           [fmt.cue(item)] * len(seeds), pol)
    return [[(r.budget, tok.decode(t.kept(r.budget)), r.think_tokens, r.forced_end, r.waits, list(r.answer_ids), r.cue)
             for r in per] for t, per in zip(trajs, results)]


def literal_rows(engine, folder: Path, budgets, seeds=(None,), temperature: float = 0.0, **policy) -> list[list[tuple]]:
    """The same rows from one capped run per budget (literal budget forcing, as s1's harness runs it)."""
    per_budget = [sweep_rows(engine, folder, [b], seeds, temperature, **policy) for b in budgets]
    return [[per_budget[i][k][0] for i in range(len(budgets))] for k in range(len(seeds))]
