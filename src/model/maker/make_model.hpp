// make_model.hpp: `infllm make-model`: Llama-architecture models with deterministic random
// weights, written in the Hugging Face layout (config.json, model.safetensors, tokenizer.json).
//
// Tests, benchmarks and scripts need models of chosen shapes without a download. Weights come
// from a counter-based hash of (seed, tensor name, element index), not from std:: distributions
// (whose output differs between standard libraries), so a model is the same file everywhere and
// any element can be recomputed alone. Scales (see make_model.cpp) keep the residual stream near
// unit RMS through every layer and give logits a standard deviation of about 4, far from flat.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/formats/model_config.hpp"
#include "model/formats/safetensors.hpp"

namespace infllm::model {

struct ModelPreset {
  std::string name;
  std::string summary;  // one line for --help and inspect
  ModelConfig config;
};

// The presets, smallest first:
//   micro  pinned (tests and scripts size KV pools by it): hidden 128, 2 layers, 4 query /
//          2 KV heads, head_dim 32, intermediate 256, vocabulary 512, 32768 positions, tied
//          embeddings, rope_theta 10000.
//   small  GQA ratio 3 (6 / 2 heads, head_dim 64), hidden 384, 4 layers, intermediate 1024,
//          vocabulary 1024, untied embeddings, llama3 rope scaling (factor 8, theta 500000).
//   1b     Llama-3.2-1B's body (hidden 2048, 16 layers, 32 / 8 heads, head_dim 64, intermediate
//          8192, llama3 rope scaling) with a vocabulary of 8192, untied: about 1.0e9 parameters.
const std::vector<ModelPreset>& model_presets();

// The preset called `name`; UsageError("preset") listing the names when there is none.
const ModelPreset& find_preset(const std::string& name);

struct MakeModelOptions {
  std::string preset = "micro";
  std::string out_dir;  // created when missing; config.json etc. inside are replaced
  std::uint64_t seed = 0;
  StDtype dtype = StDtype::kF32;
};

// Writes the model and returns its config. Each file is written whole to a temporary name and
// renamed, so an interrupted run leaves no half-written file under its final name.
ModelConfig make_model(const MakeModelOptions& options);

// The deterministic value in [-1, 1) of element `index` of tensor `name` for `seed`.
float make_model_uniform(std::uint64_t seed, std::string_view name, std::int64_t index);

// The tokenizer.json of a generated model with `vocab_size` entries: byte-level BPE trained on
// the built-in corpus (bpe_trainer.hpp) to 512 entries, with special tokens <|endoftext|> (0),
// <|im_start|> (1), <|im_end|> (2), padded with special tokens <|reserved_N|> up to vocab_size.
nlohmann::json make_model_tokenizer(std::int64_t vocab_size);

}  // namespace infllm::model
