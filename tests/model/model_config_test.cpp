// model_config_test.cpp: config.json of the Llama family (Llama 3, Mistral, Qwen2, SmolLM2) and
// one clear InputError per bad field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.hpp"
#include "model/model_config.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

// Llama-3.2-1B's config.json (as published), trimmed of keys infllm ignores.
json llama32_1b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32,
    "num_hidden_layers": 16, "num_key_value_heads": 8, "head_dim": 64,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "vocab_size": 128256, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "torch_dtype": "bfloat16"})");
}

// The message of the InputError that parsing `j` throws; "" when it parses.
std::string error_of(const json& j) {
  try {
    parse_hf_config(j, "config.json");
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "config.json");
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesLlama3WithRopeScaling) {
  const ModelConfig c = parse_hf_config(llama32_1b(), "config.json");
  EXPECT_EQ(c.num_layers, 16);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 512);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.attention_bias);
}

TEST(ModelConfig, HeadDimDefaultsToHiddenOverHeads) {
  json j = llama32_1b();
  j.erase("head_dim");
  j["hidden_size"] = 1024;
  EXPECT_EQ(parse_hf_config(j, "config.json").head_dim, 32);
}

TEST(ModelConfig, Qwen2HasAttentionBiasAndNoSlidingWindowByDefault) {
  json j = llama32_1b();
  j["model_type"] = "qwen2";
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;
  j["rope_scaling"] = nullptr;
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.sliding_window);
}

TEST(ModelConfig, MistralKeepsItsSlidingWindow) {
  json j = llama32_1b();
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 4096);
}

TEST(ModelConfig, MissingRequiredFieldIsNamed) {
  json j = llama32_1b();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("hidden_size: missing"), std::string::npos);
}

TEST(ModelConfig, MistypedFieldIsNamed) {
  json j = llama32_1b();
  j["num_hidden_layers"] = "sixteen";
  EXPECT_NE(error_of(j).find("num_hidden_layers: is not an integer"), std::string::npos);
}

TEST(ModelConfig, KvHeadsMustDivideHeads) {
  json j = llama32_1b();
  j["num_key_value_heads"] = 5;
  EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);
}

TEST(ModelConfig, UnknownRopeScalingIsRejected) {
  json j = llama32_1b();
  j["rope_scaling"]["rope_type"] = "yarn";
  EXPECT_NE(error_of(j).find("'yarn' is not supported"), std::string::npos);
}

TEST(ModelConfig, OtherArchitecturesAreRejected) {
  json j = llama32_1b();
  j["model_type"] = "gpt2";
  EXPECT_NE(error_of(j).find("model_type"), std::string::npos);
  j = llama32_1b();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);
}

TEST(ModelConfig, EosOutsideVocabularyIsRejected) {
  json j = llama32_1b();
  j["eos_token_id"] = 200000;
  EXPECT_NE(error_of(j).find("eos_token_id"), std::string::npos);
}

TEST(ModelConfig, WrittenJsonParsesBackToTheSameConfig) {
  const ModelConfig a = parse_hf_config(llama32_1b(), "config.json");
  const ModelConfig b = parse_hf_config(to_hf_json(a), "config.json");
  EXPECT_EQ(to_hf_json(a), to_hf_json(b));
  EXPECT_EQ(b.rope_scaling.type, "llama3");
  EXPECT_EQ(b.eos_token_ids, a.eos_token_ids);
}

TEST(ModelConfig, ParameterCountOfSmolLM2Shape) {
  ModelConfig c;
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.num_layers = 30;
  c.num_heads = 9;
  c.num_kv_heads = 3;
  c.head_dim = 64;
  c.intermediate_size = 1536;
  c.tie_word_embeddings = true;
  EXPECT_EQ(c.parameter_count(), 134515008);  // as Hugging Face reports for SmolLM2-135M
}

TEST(ModelConfig, UnreadableFileIsAnInputError) {
  EXPECT_THROW(load_hf_config("/nonexistent/config.json"), InputError);
}

}  // namespace
}  // namespace infllm::model
