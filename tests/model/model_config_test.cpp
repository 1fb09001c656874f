// model_config_test.cpp: config.json of the Llama family (Llama 2 and 3, Mistral, Qwen2,
// SmolLM2) in both RoPE forms (transformers 5's rope_parameters, the legacy top-level keys), the
// defaults transformers takes per architecture, and one clear InputError per bad or unknown key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.hpp"
#include "model/formats/model_config.hpp"
#include "support/temp_dir.hpp"

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

// The same model saved by transformers 5: RoPE inside rope_parameters, `dtype`.
json llama32_1b_v5() {
  json j = llama32_1b();
  j["rope_parameters"] = j["rope_scaling"];
  j["rope_parameters"]["rope_theta"] = j["rope_theta"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["dtype"] = j["torch_dtype"];
  j.erase("torch_dtype");
  return j;
}

// `j` as another member of the family.
json as(json j, const std::string& model_type, const std::string& architecture) {
  j["model_type"] = model_type;
  j["architectures"] = {architecture};
  return j;
}

bool defaulted(const ModelConfig& c, const std::string& entry) {
  return std::find(c.defaulted.begin(), c.defaulted.end(), entry) != c.defaulted.end();
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
  json j = as(llama32_1b(), "qwen2", "Qwen2ForCausalLM");
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;
  j["rope_scaling"] = nullptr;
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.sliding_window);
}

TEST(ModelConfig, MistralKeepsItsSlidingWindow) {
  json j = as(llama32_1b(), "mistral", "MistralForCausalLM");
  j["sliding_window"] = 4096;
  EXPECT_EQ(parse_hf_config(j, "config.json").sliding_window, 4096);
  // Mistral v0.2 and later write null: full attention. A missing key is MistralConfig's 4096.
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(parse_hf_config(j, "config.json").sliding_window);
  j.erase("sliding_window");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_TRUE(defaulted(c, "sliding_window 4096"));
}

TEST(ModelConfig, MissingKeysTakeTheArchitecturesTransformersDefaults) {
  json j = llama32_1b();
  j.erase("rms_norm_eps");
  j.erase("num_key_value_heads");
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.num_kv_heads, 32);  // LlamaConfig: num_attention_heads
  EXPECT_TRUE(defaulted(c, "rms_norm_eps 1e-06"));
  EXPECT_TRUE(defaulted(c, "num_key_value_heads 32"));

  j = as(j, "mistral", "MistralForCausalLM");
  j["sliding_window"] = nullptr;
  c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.num_kv_heads, 8);  // MistralConfig's own default
  EXPECT_TRUE(defaulted(c, "num_key_value_heads 8"));

  // Every value given: nothing defaulted.
  j = llama32_1b();
  EXPECT_EQ(parse_hf_config(j, "config.json").defaulted,
            (std::vector<std::string>{"attention_bias false", "mlp_bias false"}));
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  EXPECT_TRUE(parse_hf_config(j, "config.json").defaulted.empty());
  // A missing size is transformers' default too; the weights' shapes then refuse the model.
  j = llama32_1b();
  j.erase("hidden_size");
  j.erase("head_dim");
  c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_TRUE(defaulted(c, "hidden_size 4096"));
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
  j["rope_scaling"]["rope_type"] = "dynamic";
  EXPECT_NE(error_of(j).find("rope_scaling.rope_type: 'dynamic' is not supported"),
            std::string::npos);
  j = llama32_1b_v5();
  j["rope_parameters"]["rope_type"] = "longrope";
  EXPECT_NE(error_of(j).find("rope_parameters.rope_type: 'longrope' is not supported"),
            std::string::npos);
}

TEST(ModelConfig, RopeParametersFormReadsLikeTheLegacyForm) {
  const ModelConfig a = parse_hf_config(llama32_1b(), "config.json");
  const ModelConfig b = parse_hf_config(llama32_1b_v5(), "config.json");
  EXPECT_EQ(b.rope_theta, 500000.0);
  EXPECT_EQ(b.rope_source, "rope_parameters");
  EXPECT_EQ(a.rope_source, "rope_scaling + rope_theta");
  EXPECT_EQ(to_hf_json(a), to_hf_json(b));
  EXPECT_EQ(b.torch_dtype, "bfloat16");
}

TEST(ModelConfig, RopeGivenTwiceMustAgree) {
  json j = llama32_1b_v5();
  j["rope_theta"] = 10000.0;
  EXPECT_NE(error_of(j).find("rope_parameters.rope_theta: differs from the top-level"),
            std::string::npos);
  j = llama32_1b_v5();
  j["rope_scaling"] = j["rope_parameters"];
  j["rope_scaling"]["factor"] = 16.0;
  EXPECT_NE(error_of(j).find("rope_parameters: differs from rope_scaling"), std::string::npos);
  j = llama32_1b();
  j["rope_scaling"]["type"] = "linear";
  EXPECT_NE(error_of(j).find("rope_scaling.type: 'linear' differs from rope_type"),
            std::string::npos);
}

TEST(ModelConfig, Llama3ParametersFollowTransformers) {
  json j = llama32_1b_v5();
  j["rope_parameters"].erase("original_max_position_embeddings");
  const ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 131072);  // max_position_embeddings
  EXPECT_TRUE(defaulted(c, "rope_parameters.original_max_position_embeddings 131072"));
  j = llama32_1b_v5();
  j["rope_parameters"].erase("low_freq_factor");  // required by transformers
  EXPECT_NE(error_of(j).find("rope_parameters.low_freq_factor: missing"), std::string::npos);
  j = llama32_1b_v5();
  j["rope_parameters"]["beta_fast"] = 32;  // not a llama3 parameter
  EXPECT_NE(error_of(j).find("rope_parameters.beta_fast: is not a parameter"), std::string::npos);
}

TEST(ModelConfig, YarnAttentionFactorAsTransformers) {
  // Qwen2.5's published form.
  json j = as(llama32_1b(), "qwen2", "Qwen2ForCausalLM");
  j["rope_scaling"] = {
      {"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  ModelConfig c = parse_hf_config(j, "config.json");
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope_scaling.attention_factor, 0.1 * std::log(4.0) + 1.0);
  EXPECT_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_EQ(c.rope_scaling.beta_slow, 1.0);
  // mscale / mscale_all_dim (DeepSeek's form), and an explicit attention_factor.
  j["rope_scaling"]["mscale"] = 0.707;
  j["rope_scaling"]["mscale_all_dim"] = 1.0;
  c = parse_hf_config(j, "config.json");
  EXPECT_DOUBLE_EQ(c.rope_scaling.attention_factor,
                   (0.1 * 0.707 * std::log(4.0) + 1.0) / (0.1 * std::log(4.0) + 1.0));
  j["rope_scaling"]["attention_factor"] = 1.25;
  EXPECT_DOUBLE_EQ(parse_hf_config(j, "config.json").rope_scaling.attention_factor, 1.25);
  // A null factor is max_position_embeddings / original_max_position_embeddings.
  j["rope_scaling"]["factor"] = nullptr;
  EXPECT_DOUBLE_EQ(parse_hf_config(j, "config.json").rope_scaling.factor, 131072.0 / 32768.0);
  const ModelConfig back = parse_hf_config(to_hf_json(c), "config.json");
  EXPECT_EQ(to_hf_json(back), to_hf_json(c));
}

TEST(ModelConfig, UnknownKeysAreRefusedByName) {
  json j = llama32_1b();
  j["use_qk_norm"] = true;
  EXPECT_NE(error_of(j).find("use_qk_norm: is not a key of a llama config"), std::string::npos);
  // A key of another architecture is unknown to this one.
  j = llama32_1b();
  j["max_window_layers"] = 28;
  EXPECT_NE(error_of(j).find("max_window_layers"), std::string::npos);
}

TEST(ModelConfig, KeysThatChangeTheMathHaveOneSupportedValue) {
  const std::pair<const char*, json> cases[] = {
      {"attention_bias", true},
      {"mlp_bias", true},
      {"partial_rotary_factor", 0.5},
      {"rope_interleaved", true},
      {"quantization_config", json::object({{"quant_method", "gptq"}})},
      {"pruned_heads", json::object({{"0", {1}}})}};
  for (const auto& [key, value] : cases) {
    json j = llama32_1b();
    j[key] = value;
    EXPECT_NE(error_of(j).find(std::string(key) + ":"), std::string::npos) << key;
  }
}

TEST(ModelConfig, PublishedConfigsWithTheirBookkeepingKeysParse) {
  // Llama-2-7b-hf's config.json as published.
  const json llama2 = json::parse(R"({
    "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "float16",
    "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})");
  const ModelConfig c = parse_hf_config(llama2, "config.json");
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(defaulted(c, "rope_theta 10000"));
  EXPECT_EQ(c.rope_source, "");
  // Qwen2.5-7B-Instruct's.
  json qwen = json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584,
    "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 32768,
    "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 28,
    "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 152064})");
  EXPECT_FALSE(parse_hf_config(qwen, "config.json").sliding_window);
  // With sliding windows on from layer 14, transformers would slide there: kept, so the
  // forward pass refuses it with its reason.
  qwen["use_sliding_window"] = true;
  qwen["max_window_layers"] = 14;
  EXPECT_EQ(parse_hf_config(qwen, "config.json").sliding_window, 131072);
  qwen["layer_types"] = json::array();
  for (int i = 0; i < 28; ++i)
    qwen["layer_types"].push_back(i < 14 ? "full_attention" : "sliding_attention");
  EXPECT_NE(error_of(qwen).find("layer_types: only full_attention"), std::string::npos);
}

TEST(ModelConfig, ArchitectureMustBeTheCausalLmOfItsModelType) {
  json j = llama32_1b();
  j["architectures"] = {"LlamaForSequenceClassification"};
  EXPECT_NE(error_of(j).find("architectures"), std::string::npos);
  j = llama32_1b();
  j.erase("model_type");
  EXPECT_NE(error_of(j).find("model_type: missing"), std::string::npos);
}

TEST(ModelConfig, OtherModelTypesAreRejected) {
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

TEST(ModelConfig, DuplicateKeyInConfigJsonIsRefused) {
  const infllm::testing::TempDir dir("infllm-config");
  const std::string path = (dir.path() / "config.json").string();
  std::string text = llama32_1b().dump();
  text.insert(1, "\"rope_theta\": 10000.0, ");  // before the real one
  std::ofstream(path) << text;
  try {
    load_hf_config(path);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find("key rope_theta: appears twice"), std::string::npos)
        << e.what();
  }
}

TEST(ModelConfig, UnreadableFileIsAnInputError) {
  EXPECT_THROW(load_hf_config("/nonexistent/config.json"), InputError);
}

}  // namespace
}  // namespace infllm::model
