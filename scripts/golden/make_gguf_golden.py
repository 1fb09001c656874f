#!/usr/bin/env python3
"""make_gguf_golden.py: small GGUF / safetensors files with known contents for infllm's tests.

Independent reference for infllm's GGUF reader and dequantizers: the `gguf` PyPI package
(llama.cpp's own Python library) writes the files and dequantizes the tensors with its numpy
code (gguf.quants.dequantize), not with anything from infllm.

Writes into tests/data/model/:
  dequant_golden.gguf   for each ggml type T that infllm reads, a tensor "T" of shape [2, 256]
                        stored as T, and "T.expected" (F32) holding gguf.quants.dequantize of it.
                        Types the gguf package can quantize are quantized from random values; the
                        K-quants (no quantizer in Python) are random bytes with sane f16 scales.
  tiny_llama/           a Hugging Face model (config.json, model.safetensors, f32) of a tiny
                        Llama (1 layer, 4 query / 2 KV heads, head_dim 8, untied).
  tiny_llama.gguf       the same weights converted as llama.cpp's convert_hf_to_gguf.py does:
                        GGUF names, and q/k rows permuted for GGML's interleaved RoPE by
                        LlamaModel.permute, plus a small tokenizer.* metadata block.

Run:  python3 -m venv /tmp/venv-model && /tmp/venv-model/bin/pip install gguf numpy safetensors
      /tmp/venv-model/bin/python scripts/golden/make_gguf_golden.py
Fixed seed: the outputs are byte-identical run to run for a given gguf version (0.19.0 used).
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter, quants
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "model")
rng = np.random.default_rng(1234)

ROWS, COLS = 2, 256
QUANTIZABLE = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
# K-quants: (type, block bytes, byte offsets of f16 scale fields within a block)
K_QUANTS = [
    (T.Q2_K, 84, [80, 82]),
    (T.Q3_K, 110, [108]),
    (T.Q4_K, 144, [0, 2]),
    (T.Q5_K, 176, [0, 2]),
    (T.Q6_K, 210, [208]),
]


def dequant_golden():
    w = GGUFWriter(os.path.join(OUT, "dequant_golden.gguf"), "golden")
    for qt in QUANTIZABLE:
        values = rng.standard_normal((ROWS, COLS)).astype(np.float32)
        raw = values if qt == T.F32 else quants.quantize(values, qt)
        expected = quants.dequantize(raw, qt).astype(np.float32)
        w.add_tensor(qt.name, raw, raw_dtype=qt)
        w.add_tensor(qt.name + ".expected", expected)
    for qt, block_bytes, scale_offsets in K_QUANTS:
        blocks = ROWS * COLS // 256
        raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
        for off in scale_offsets:
            scale = rng.uniform(0.001, 0.05, size=blocks).astype(np.float16)
            raw[:, off:off + 2] = scale.view(np.uint8).reshape(blocks, 2)
        raw = raw.reshape(ROWS, -1)
        expected = quants.dequantize(raw, qt).astype(np.float32)
        w.add_tensor(qt.name, raw, raw_dtype=qt)
        w.add_tensor(qt.name + ".expected", expected)
    values = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    w.add_tensor("F32", values)
    w.add_tensor("F32.expected", values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def permute(weights, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py, LlamaModel.permute (HF rotate_half -> GGML interleaved)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def tiny_llama():
    hidden, layers, heads, kv_heads, head_dim, inter, vocab = 32, 1, 4, 2, 8, 48, 16
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
        "intermediate_size": inter, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "bos_token_id": 1,
        "eos_token_id": 2, "torch_dtype": "float32",
    }

    def t(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    hf = {"model.embed_tokens.weight": t(vocab, hidden), "model.norm.weight": 1 + t(hidden),
          "lm_head.weight": t(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        hf[p + "self_attn.q_proj.weight"] = t(heads * head_dim, hidden)
        hf[p + "self_attn.k_proj.weight"] = t(kv_heads * head_dim, hidden)
        hf[p + "self_attn.v_proj.weight"] = t(kv_heads * head_dim, hidden)
        hf[p + "self_attn.o_proj.weight"] = t(hidden, heads * head_dim)
        hf[p + "mlp.gate_proj.weight"] = t(inter, hidden)
        hf[p + "mlp.up_proj.weight"] = t(inter, hidden)
        hf[p + "mlp.down_proj.weight"] = t(hidden, inter)
        hf[p + "input_layernorm.weight"] = 1 + t(hidden)
        hf[p + "post_attention_layernorm.weight"] = 1 + t(hidden)
    os.makedirs(os.path.join(OUT, "tiny_llama"), exist_ok=True)
    with open(os.path.join(OUT, "tiny_llama", "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file(hf, os.path.join(OUT, "tiny_llama", "model.safetensors"), metadata={"format": "pt"})

    w = GGUFWriter(os.path.join(OUT, "tiny_llama.gguf"), "llama")
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    w.add_token_types([1] * vocab)
    w.add_token_merges(["t 1", "t 2"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template("{{ messages }}")
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    w.add_tensor("output.weight", hf["lm_head.weight"])
    names = {"self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight",
                     permute(hf[p + "self_attn.q_proj.weight"], heads, heads))
        w.add_tensor(f"blk.{i}.attn_k.weight",
                     permute(hf[p + "self_attn.k_proj.weight"], heads, kv_heads))
        for hf_name, gguf_name in names.items():
            w.add_tensor(f"blk.{i}.{gguf_name}.weight", hf[p + hf_name + ".weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    dequant_golden()
    tiny_llama()
