// weights_test.cpp: load_model on both formats: the same tiny Llama as a Hugging Face directory
// and as a GGUF file converted the way llama.cpp converts (q/k rows permuted) gives identical
// weights; sharded checkpoints; one clear InputError per inconsistency; and the real SmolLM2
// GGUF when it is in the cache.
//
// Data: tests/data/model/tiny_llama{/, .gguf}, made by scripts/golden/make_gguf_golden.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "core/half.hpp"
#include "model/formats/gguf.hpp"
#include "model/formats/safetensors.hpp"
#include "model/formats/weights.hpp"
#include "support/temp_dir.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(INFLLM_SOURCE_DIR) + "/tests/data/model";
const std::string kTinyHf = kData + "/tiny_llama";
const std::string kTinyGguf = kData + "/tiny_llama.gguf";

void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_TRUE(a.data == b.data) << what << " differs";
}

TEST(LoadModel, GgufAndHfGiveIdenticalWeights) {
  const LoadedModel hf = load_model(kTinyHf);
  const LoadedModel gg = load_model(kTinyGguf);
  EXPECT_EQ(hf.format, ModelFormat::kHuggingFace);
  EXPECT_EQ(gg.format, ModelFormat::kGguf);
  expect_same(hf.weights.embed, gg.weights.embed, "embed");
  expect_same(hf.weights.final_norm, gg.weights.final_norm, "final_norm");
  expect_same(hf.weights.lm_head, gg.weights.lm_head, "lm_head");
  ASSERT_EQ(hf.weights.layers.size(), 1u);
  ASSERT_EQ(gg.weights.layers.size(), 1u);
  const LayerWeights& a = hf.weights.layers[0];
  const LayerWeights& b = gg.weights.layers[0];
  expect_same(a.q, b.q, "q");
  expect_same(a.k, b.k, "k");
  expect_same(a.v, b.v, "v");
  expect_same(a.o, b.o, "o");
  expect_same(a.gate, b.gate, "gate");
  expect_same(a.up, b.up, "up");
  expect_same(a.down, b.down, "down");
  expect_same(a.attn_norm, b.attn_norm, "attn_norm");
  expect_same(a.ffn_norm, b.ffn_norm, "ffn_norm");
}

TEST(LoadModel, GgufQueryRowsAreStoredPermuted) {
  // Guards the test above: the file really holds permuted rows, so equality needs the unpermute.
  const GgufFile g(kTinyGguf);
  const LoadedModel hf = load_model(kTinyHf);
  EXPECT_FALSE(g.read_f32(*g.find_tensor("blk.0.attn_q.weight")) == hf.weights.layers[0].q.data);
  EXPECT_FALSE(g.read_f32(*g.find_tensor("blk.0.attn_k.weight")) == hf.weights.layers[0].k.data);
}

TEST(LoadModel, GgufConfigMatchesConfigJson) {
  const ModelConfig a = load_model(kTinyHf).config;
  const ModelConfig b = load_model(kTinyGguf).config;
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.num_layers, b.num_layers);
  EXPECT_EQ(a.num_heads, b.num_heads);
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_NEAR(a.rms_norm_eps, b.rms_norm_eps, 1e-12);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
}

TEST(LoadModel, GgufTokenizerMetadataIsKeptRaw) {
  const LoadedModel m = load_model(kTinyGguf);
  ASSERT_TRUE(m.gguf_tokenizer);
  const GgufTokenizerData& t = *m.gguf_tokenizer;
  EXPECT_EQ(t.model, "gpt2");
  ASSERT_EQ(t.tokens.size(), 16u);
  EXPECT_EQ(t.tokens[5], "t5");
  EXPECT_EQ(t.merges, (std::vector<std::string>{"t 1", "t 2"}));
  EXPECT_EQ(t.token_type.size(), 16u);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_EQ(t.add_bos_token, true);
  EXPECT_EQ(t.chat_template, "{{ messages }}");
}

TEST(UnpermuteRopeRows, UndoesLlamaCppPermutation) {
  // One head of dimension 4, two columns. llama.cpp stores HF rows (r0, r1, r2, r3) as
  // (r0, r2, r1, r3): rows i and i + d/2 become neighbours.
  Tensor t{{4, 2}, {0, 0.5f, 2, 2.5f, 1, 1.5f, 3, 3.5f}};
  unpermute_rope_rows(t, 1);
  EXPECT_EQ(t.data, (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f}));
}

TEST(UnpermuteRopeRows, WorksPerHead) {
  // Two heads of dimension 4, one column: GGUF (h0: 0 2 1 3)(h1: 4 6 5 7).
  Tensor t{{8, 1}, {0, 2, 1, 3, 4, 6, 5, 7}};
  unpermute_rope_rows(t, 2);
  EXPECT_EQ(t.data, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// A scratch copy of the tiny HF model whose tensors and config a test may change.
class HfVariant : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("infllm_weights_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kTinyHf + "/config.json", dir_ / "config.json");
    const SafetensorsFile src(kTinyHf + "/model.safetensors");
    for (const auto& t : src.tensors()) tensors_[t.name] = {t.shape, src.read_f32(t)};
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `names` (default: all) into one safetensors file `file` of the variant.
  void write(const std::string& file, std::vector<std::string> names = {},
             StDtype dtype = StDtype::kF32) {
    if (names.empty()) {
      for (const auto& [name, t] : tensors_) names.push_back(name);
    }
    std::vector<SafetensorsEntry> entries;
    for (const auto& name : names) {
      const Tensor* t = &tensors_.at(name);
      entries.push_back({name, dtype, t->shape, [t](std::int64_t first, std::span<float> out) {
                           std::copy_n(t->data.begin() + first, out.size(), out.begin());
                         }});
    }
    write_safetensors((dir_ / file).string(), entries);
  }
  // The InputError message of loading the variant, "" when it loads.
  std::string load_error() {
    try {
      load_model(dir_.string());
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::map<std::string, Tensor> tensors_;
};

TEST_F(HfVariant, Bf16WeightsAreWidenedToF32) {
  write("model.safetensors", {}, StDtype::kBF16);
  const LoadedModel m = load_model(dir_.string());
  const float original = tensors_.at("model.norm.weight").data[3];
  EXPECT_EQ(m.weights.final_norm.data[3], to_f32(to_bf16(original)));
  EXPECT_NE(m.weights.final_norm.data[3], original);
}

TEST_F(HfVariant, ShardsWithAnIndexLoadLikeOneFile) {
  std::vector<std::string> first, second;
  nlohmann::json index = {{"metadata", nlohmann::json::object()},
                          {"weight_map", nlohmann::json::object()}};
  for (const auto& [name, t] : tensors_) {
    const bool in_first = name.find("layers") != std::string::npos;
    (in_first ? first : second).push_back(name);
    index["weight_map"][name] =
        in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write("model-00001-of-00002.safetensors", first);
  write("model-00002-of-00002.safetensors", second);
  std::ofstream(dir_ / "model.safetensors.index.json") << index.dump();
  const LoadedModel sharded = load_model(dir_.string());
  const LoadedModel whole = load_model(kTinyHf);
  expect_same(sharded.weights.layers[0].q, whole.weights.layers[0].q, "q");
  expect_same(sharded.weights.embed, whole.weights.embed, "embed");
}

TEST_F(HfVariant, MissingTensorIsNamed) {
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors_) {
    if (name != "model.layers.0.mlp.up_proj.weight") names.push_back(name);
  }
  write("model.safetensors", names);
  const std::string msg = load_error();
  EXPECT_NE(msg.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST_F(HfVariant, ShapeAgainstConfigIsChecked) {
  tensors_["model.layers.0.self_attn.k_proj.weight"] = {{8, 32}, std::vector<float>(256, 0.0f)};
  write("model.safetensors");
  const std::string msg = load_error();
  EXPECT_NE(msg.find("k_proj.weight: has shape [8, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("implies [16, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST_F(HfVariant, ConfigDisagreeingWithTensorsIsChecked) {
  nlohmann::json config = nlohmann::json::parse(std::ifstream(dir_ / "config.json"));
  config["intermediate_size"] = 64;
  std::ofstream(dir_ / "config.json") << config.dump();
  write("model.safetensors");
  EXPECT_NE(load_error().find("mlp"), std::string::npos);
}

TEST_F(HfVariant, WrongDtypeIsNamed) {
  write("model.safetensors");
  // Rewrite one header dtype in place: F32 -> I32 keeps sizes, so only the dtype is wrong.
  std::fstream f(dir_ / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  std::string head(4096, '\0');
  f.read(head.data(), static_cast<std::streamsize>(head.size()));
  const auto at = head.find(R"("model.norm.weight":{"data_offsets")");
  ASSERT_NE(at, std::string::npos);
  const auto dtype_at = head.find("\"F32\"", at);
  f.seekp(static_cast<std::streamoff>(dtype_at + 1));
  f.write("I", 1);
  f.close();
  const std::string msg = load_error();
  EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dtype I32"), std::string::npos) << msg;
}

TEST_F(HfVariant, UnexpectedTensorIsRejected) {
  tensors_["model.layers.0.self_attn.rotary_emb.inv_freq"] = {{4}, {1, 2, 3, 4}};  // ignored
  tensors_["vision_tower.weight"] = {{2}, {1, 2}};
  write("model.safetensors");
  EXPECT_NE(load_error().find("vision_tower.weight"), std::string::npos);
}

TEST_F(HfVariant, NoWeightsIsAnError) {
  EXPECT_NE(load_error().find("no *.safetensors"), std::string::npos);
}

TEST(LoadModel, MissingPathIsAnInputError) {
  EXPECT_THROW(load_model("/nonexistent/model.gguf"), InputError);
}

// The tiny GGUF's bytes, for the tests that change a copy.
std::string tiny_gguf_bytes() {
  std::ifstream in(kTinyGguf, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Loads `bytes` as a .gguf file; the InputError's message, which must name that file ("" when
// it loads).
std::string gguf_load_error(const std::string& bytes) {
  const infllm::testing::TempDir dir("infllm-gguf-variant");
  const fs::path path = dir.path() / "changed.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  try {
    load_model(path.string());
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path.string());
    return e.what();
  }
  return "";
}

TEST(LoadModel, UnknownGgufTensorTypeIsNamed) {
  // A copy of the tiny GGUF with attn_v's type id changed to 99 (no such ggml type).
  std::string bytes = tiny_gguf_bytes();
  const std::string name = "blk.0.attn_v.weight";
  const auto at = bytes.find(name);
  ASSERT_NE(at, std::string::npos);
  const std::size_t type_at = at + name.size() + 4 + 2 * 8;  // n_dims u32, two u64 dims
  const std::uint32_t bogus = 99;
  std::memcpy(bytes.data() + type_at, &bogus, 4);
  const std::string message = gguf_load_error(bytes);
  EXPECT_NE(message.find("blk.0.attn_v.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("type 99"), std::string::npos) << message;
}

// A GGUF metadata key of the architecture that infllm does not read is refused by name, since
// it may change the math (here llama.rope.freq_base renamed in place to llama.rope.freq_bass).
TEST(LoadModel, UnknownGgufArchitectureKeyIsNamed) {
  std::string bytes = tiny_gguf_bytes();
  const std::string key = "llama.rope.freq_base";
  const auto at = bytes.find(key);
  ASSERT_NE(at, std::string::npos);
  bytes[at + key.size() - 1] = 's';
  EXPECT_NE(gguf_load_error(bytes).find("llama.rope.freq_bass: is not a key infllm knows"),
            std::string::npos);
}

const fs::path kSavedMistral = fs::path(INFLLM_SOURCE_DIR) / "tests/data/golden/hf_mistral";

// The message of the InputError that loading the transformers-saved Mistral gives with one key
// of its config.json changed ("" when it loads).
std::string load_error_with(const char* key, const nlohmann::json& value) {
  const infllm::testing::TempDir dir("infllm-config-variant");
  nlohmann::json config;
  std::ifstream(kSavedMistral / "config.json") >> config;
  config[key] = value;
  std::ofstream(dir.path() / "config.json") << config.dump();
  fs::copy_file(kSavedMistral / "model.safetensors", dir.path() / "model.safetensors");
  try {
    load_model(dir.path().string());
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Mistral with a real sliding window (shorter than its context) is refused at load, with the
// reason; a null window (Mistral v0.2 and later) loads.
TEST(LoadModel, SlidingWindowShorterThanTheContextIsRefused) {
  EXPECT_EQ(load_error_with("sliding_window", nullptr), "");
  EXPECT_NE(load_error_with("sliding_window", 64)
                .find("sliding_window: sliding-window attention (window 64 of 256 positions) is "
                      "not implemented"),
            std::string::npos);
}

// A config declaring far more layers than its files hold is refused before the per-layer
// structures are allocated (1,000,000 layers allocated gigabytes first).
TEST(LoadModel, MoreLayersThanTheFilesHoldIsRefusedFirst) {
  EXPECT_NE(load_error_with("num_hidden_layers", 1000000)
                .find("num_hidden_layers: 1000000 layers need at least"),
            std::string::npos);
}

// A NaN in the weights (here one bf16 element of a transformers-saved model, set to 0x7FC0) is
// refused at load, naming the file, the tensor and the element.
TEST(LoadModel, NonFiniteWeightIsRefusedNamingTheTensor) {
  const fs::path& saved = kSavedMistral;
  const infllm::testing::TempDir dir("infllm-nan");
  std::ifstream in(saved / "model.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const auto j = nlohmann::json::parse(bytes.substr(8, header));
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  ASSERT_EQ(j.at(name).at("dtype"), "BF16");
  const std::size_t at = 8 + header + j.at(name).at("data_offsets")[0].get<std::size_t>() + 2 * 3;
  bytes[at] = static_cast<char>(0xC0);
  bytes[at + 1] = static_cast<char>(0x7F);
  fs::copy_file(saved / "config.json", dir.path() / "config.json");
  std::ofstream(dir.path() / "model.safetensors", std::ios::binary) << bytes;
  try {
    load_model(dir.path().string());
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), (dir.path() / "model.safetensors").string());
    EXPECT_NE(std::string(e.what()).find("tensor " + name +
                                         ": holds a non-finite value (nan) "
                                         "at element 3"),
              std::string::npos)
        << e.what();
  }
}

// The real default model, when scripts/fetch_model.sh has put it in the cache.
TEST(LoadModel, RealSmolLM2HasItsPublishedShape) {
  const std::string path = smollm2_gguf_path();
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (scripts/fetch_model.sh fetches it)";
  const LoadedModel m = load_model(path);
  const ModelConfig& c = m.config;
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(m.weights.lm_head.empty());
  EXPECT_EQ(&m.weights.output(), &m.weights.embed);
  EXPECT_EQ(m.weights.parameter_count(), 134515008);
  ASSERT_TRUE(m.gguf_tokenizer);
  EXPECT_EQ(m.gguf_tokenizer->tokens.size(), 49152u);
  EXPECT_EQ(m.gguf_tokenizer->add_bos_token, false);
  // Dequantized weights are finite and not all zero.
  for (const float v : m.weights.layers[29].down.data) ASSERT_TRUE(std::isfinite(v));
  double sum_sq = 0;
  for (const float v : m.weights.embed.data) sum_sq += double{v} * v;
  EXPECT_GT(sum_sq, 0.0);
}

}  // namespace
}  // namespace infllm::model
