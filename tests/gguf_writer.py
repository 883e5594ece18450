"""Write a tiny Llama model as a GGUF file (fp32 tensors, byte-level BPE vocab) for loader tests.

The layout follows the GGUF conventions llama.cpp's converter uses (tensor names, rotary permutation of
q/k rows), so a correct GGUF reader must give back exactly the original weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _bytes_to_unicode() -> list[str]:
    """GPT-2's reversible byte → printable-character table (byte-level BPE alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """HF rotary layout → GGUF (interleaved) layout of q/k projection rows."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, path: Path) -> Path:
    import gguf

    cfg = model.config
    assert cfg.vocab_size >= 258, "byte-level vocab needs 256 bytes + 2 specials"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-test-llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = _bytes_to_unicode() + ["<|endoftext|>", "<|im_end|>", "he", "ll", "or"]
    tokens += [f"<|extra_{i}|>" for i in range(cfg.vocab_size - len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * 256 + [3, 3] + [1] * (len(tokens) - 258))
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_merges(["h e", "l l", "o r"])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    w.add_pad_token_id(256)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down"}
    for i in range(cfg.num_hidden_layers):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if hf == "self_attn.q_proj":
                t = _permute(t, heads)
            elif hf == "self_attn.k_proj":
                t = _permute(t, kv_heads)
            w.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
