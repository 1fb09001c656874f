// make_model_test.cpp: generated models: the pinned micro preset, determinism by seed, dtypes,
// weight scales, the tokenizer.json, and `infllm make-model` / `infllm inspect` as processes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/formats/safetensors.hpp"
#include "model/formats/weights.hpp"
#include "model/maker/make_model.hpp"
#include "support/run_command.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;

class MakeModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infllm_make_model_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
};

TEST_F(MakeModel, MicroHasThePinnedShape) {
  make_model({"micro", out("m"), 0, StDtype::kF32});
  const LoadedModel m = load_model(out("m"));
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.hidden_size, 128);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.intermediate_size, 256);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_EQ(m.weights.layers[1].down.shape, (std::vector<std::int64_t>{128, 256}));
  EXPECT_EQ(m.tokenizer_json_path, out("m") + "/tokenizer.json");
}

TEST_F(MakeModel, SameSeedSameBytesOtherSeedOtherWeights) {
  make_model({"micro", out("a"), 7, StDtype::kF32});
  make_model({"micro", out("b"), 7, StDtype::kF32});
  make_model({"micro", out("c"), 8, StDtype::kF32});
  EXPECT_EQ(read(out("a") + "/model.safetensors"), read(out("b") + "/model.safetensors"));
  EXPECT_EQ(read(out("a") + "/tokenizer.json"), read(out("b") + "/tokenizer.json"));
  EXPECT_NE(read(out("a") + "/model.safetensors"), read(out("c") + "/model.safetensors"));
}

TEST_F(MakeModel, Bf16StoresBf16AndSaysSo) {
  make_model({"micro", out("m"), 0, StDtype::kBF16});
  const SafetensorsFile st(out("m") + "/model.safetensors");
  for (const auto& t : st.tensors()) EXPECT_EQ(t.dtype, "BF16") << t.name;
  EXPECT_EQ(load_hf_config(out("m") + "/config.json").torch_dtype, "bfloat16");
}

TEST_F(MakeModel, WeightsFollowTheirNamedHashAlone) {
  make_model({"micro", out("m"), 3, StDtype::kF32});
  const LoadedModel m = load_model(out("m"));
  // q_proj of layer 1 has std 1/sqrt(hidden): amplitude sqrt(3/hidden).
  const float amplitude = std::sqrt(3.0f / 128.0f);
  const auto& q = m.weights.layers[1].q.data;
  for (const std::int64_t i : {0, 1, 4095, 16383}) {
    EXPECT_FLOAT_EQ(q[static_cast<std::size_t>(i)],
                    amplitude * make_model_uniform(3, "model.layers.1.self_attn.q_proj.weight", i));
  }
}

TEST(MakeModelUniform, IsInRangeAndCentred) {
  double sum = 0, sum_sq = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float u = make_model_uniform(42, "t", i);
    ASSERT_GE(u, -1.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sum_sq += double{u} * u;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0 / 3.0, 0.01);  // variance of uniform [-1, 1)
  EXPECT_NE(make_model_uniform(42, "t", 0), make_model_uniform(42, "u", 0));
  EXPECT_NE(make_model_uniform(42, "t", 0), make_model_uniform(43, "t", 0));
}

TEST_F(MakeModel, LogitsAreFarFromFlat) {
  // Proxy for the forward pass: the tied head applied to the RMS-normalized embedding of a token.
  // With embedding std 4/sqrt(H) the logits have a standard deviation near 4.
  make_model({"micro", out("m"), 0, StDtype::kF32});
  const LoadedModel m = load_model(out("m"));
  const Tensor& e = m.weights.embed;
  const std::int64_t H = e.cols(), V = e.rows();
  std::vector<float> x(e.data.begin() + 100 * H, e.data.begin() + 101 * H);
  double ms = 0;
  for (const float v : x) ms += double{v} * v / static_cast<double>(H);
  for (float& v : x) v = static_cast<float>(v / std::sqrt(ms));
  double sum = 0, sum_sq = 0;
  for (std::int64_t t = 0; t < V; ++t) {
    double logit = 0;
    for (std::int64_t j = 0; j < H; ++j) logit += double{e.data[t * H + j]} * x[j];
    sum += logit;
    sum_sq += logit * logit;
  }
  const double std_dev = std::sqrt(sum_sq / V - (sum / V) * (sum / V));
  EXPECT_GT(std_dev, 2.5);
  EXPECT_LT(std_dev, 8.0);
}

TEST(MakeModelPresets, SmallAndOneBillionHaveTheirDocumentedShapes) {
  const ModelConfig& small = find_preset("small").config;
  EXPECT_EQ(small.num_heads / small.num_kv_heads, 3);
  EXPECT_EQ(small.rope_scaling.type, "llama3");
  EXPECT_FALSE(small.tie_word_embeddings);
  const ModelConfig& big = find_preset("1b").config;
  EXPECT_GT(big.parameter_count(), 900'000'000);
  EXPECT_LT(big.parameter_count(), 1'300'000'000);
  for (const auto& p : model_presets()) EXPECT_NO_THROW(p.config.validate(p.name)) << p.name;
}

TEST(MakeModelPresets, UnknownPresetNamesTheOption) {
  try {
    find_preset("huge");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_EQ(e.option(), "preset");
    EXPECT_NE(std::string(e.what()).find("micro"), std::string::npos);
  }
}

TEST(MakeModelTokenizer, CoversTheWholeVocabulary) {
  const nlohmann::json tok = make_model_tokenizer(1024);
  std::vector<bool> seen(1024, false);
  for (const auto& [text, id] : tok["model"]["vocab"].items()) {
    ASSERT_LT(id.get<std::int64_t>(), 1024) << text;
    seen[id.get<std::size_t>()] = true;
  }
  for (std::size_t id = 0; id < seen.size(); ++id) EXPECT_TRUE(seen[id]) << "id " << id;
  EXPECT_EQ(tok["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(tok["added_tokens"][2]["content"], "<|im_end|>");
  EXPECT_EQ(tok["added_tokens"].back()["content"], "<|reserved_511|>");
}

// Runs the built executable; returns (exit code, stdout + stderr).
using infllm::testing::run_infllm;

TEST_F(MakeModel, ExecutableMakesAModelThatInspectDescribes) {
  const auto [made, made_out] =
      run_infllm("make-model --preset micro --seed 1 --dtype bf16 --out " + out("m"));
  ASSERT_EQ(made, 0) << made_out;
  const auto [code, text] = run_infllm("inspect " + out("m"));
  ASSERT_EQ(code, 0) << text;
  EXPECT_NE(text.find("LlamaForCausalLM"), std::string::npos) << text;
  EXPECT_NE(text.find("layers 2, heads 4 query / 2 KV"), std::string::npos) << text;
  EXPECT_NE(text.find("parameters:     361,088"), std::string::npos) << text;
  EXPECT_NE(text.find("tensors:        20 (BF16 20)"), std::string::npos) << text;
  EXPECT_NE(text.find("tokenizer.json, BPE (byte-level), 512"), std::string::npos) << text;
  EXPECT_NE(text.find("chat template:  chatml ("), std::string::npos) << text;
  // 2 (K and V) x 2 layers x 2 KV heads x 32 dims x 4 bytes.
  EXPECT_NE(text.find("kv cache:       1024 bytes per token per rank"), std::string::npos) << text;
}

// The regression of inspect reporting rope_theta 10000 for a model that transformers 5 saved
// with rope_theta 100000 inside rope_parameters; inspect also lists what was defaulted.
TEST_F(MakeModel, InspectShowsTheRopeOfAModelTransformersSaved) {
  const std::string dir = std::string(INFLLM_SOURCE_DIR) + "/tests/data/golden/hf_llama_rope_theta";
  const auto [code, text] = run_infllm("inspect " + dir);
  ASSERT_EQ(code, 0) << text;
  EXPECT_NE(text.find("rope:           default (theta 100000), from rope_parameters"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("defaulted:      nothing"), std::string::npos) << text;
  EXPECT_NE(text.find("chat template:  none"), std::string::npos) << text;
  const auto qwen3 =
      run_infllm("inspect " + std::string(INFLLM_SOURCE_DIR) + "/tests/data/golden/hf_qwen3");
  EXPECT_NE(qwen3.out.find("attention:      no biases, q/k RMSNorm per head"), std::string::npos)
      << qwen3.out;
  // Its config without rms_norm_eps: LlamaConfig's 1e-06, shown as defaulted.
  nlohmann::json config;
  std::ifstream(dir + "/config.json") >> config;
  config.erase("rms_norm_eps");
  fs::create_directories(out("d"));
  std::ofstream(out("d") + "/config.json") << config.dump();
  fs::copy_file(dir + "/model.safetensors", out("d") + "/model.safetensors");
  const auto [code2, text2] = run_infllm("inspect " + out("d"));
  ASSERT_EQ(code2, 0) << text2;
  EXPECT_NE(text2.find("defaulted:      rms_norm_eps 1e-06"), std::string::npos) << text2;
}

TEST_F(MakeModel, ExecutableRejectsAnUnknownPresetWithExitTwo) {
  const auto [code, text] = run_infllm("make-model --preset huge --out " + out("m"));
  EXPECT_EQ(code, 2);
  EXPECT_NE(text.find("--preset"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(out("m") + "/config.json"));
}

TEST_F(MakeModel, ExecutableInspectOfACorruptModelExitsTwoNamingTheFile) {
  make_model({"micro", out("m"), 0, StDtype::kF32});
  fs::resize_file(out("m") + "/model.safetensors", 1000);
  const auto [code, text] = run_infllm("inspect " + out("m"));
  EXPECT_EQ(code, 2);
  EXPECT_NE(text.find("model.safetensors"), std::string::npos) << text;
}

}  // namespace
}  // namespace infllm::model
