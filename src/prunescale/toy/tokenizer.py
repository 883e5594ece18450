"""Character-level tokenizer and chat template of the tiny reasoner.

Every character is one token, so a budget of B thinking tokens is an exact number of characters and a
step line costs a known 5-6 tokens. The chat markers, the thinking markers and "Wait" are single tokens,
like in real reasoning models, so budget forcing can append or drop them as whole tokens.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS_CHAT, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SPECIAL = (PAD, BOS_CHAT, EOS, THINK_OPEN, THINK_CLOSE)
WORDS = ("user", "assistant", "system", "Wait")
CHARS = "0123456789abcdefghijklmnopqrstuvwxyz=+-*;:>,?!. \n"
UNK = "<unk>"

# The template opens the thinking block itself (like s1 / some Qwen3 templates); with
# enable_thinking=False it writes an empty thinking block, the same text a budget of 0 produces.
# Newlines are emitted as string expressions: `{%- -%}` whitespace control would eat literal ones.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n<think>\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{ '</think>\\n\\n' }}"
    "{%- endif -%}"
    "{%- endif -%}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the tokenizer from scratch (deterministic ids: specials first, then words, then chars)."""
    vocab: dict[str, int] = {}
    for tok in (*SPECIAL, *WORDS, UNK, *CHARS):
        vocab.setdefault(tok, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tok.add_tokens([AddedToken(w, special=False, normalized=False) for w in WORDS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=[BOS_CHAT, THINK_OPEN, THINK_CLOSE],
        padding_side="left",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def render_prompt(prompt: str, thinking: bool = True) -> str:
    """The chat-formatted text the model sees before its first thinking token."""
    head = f"{BOS_CHAT}user\n{prompt}{EOS}\n{BOS_CHAT}assistant\n{THINK_OPEN}\n"
    return head if thinking else head + f"{THINK_CLOSE}\n\n"
