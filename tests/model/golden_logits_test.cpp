// golden_logits_test.cpp: infllm's forward pass against logits computed by an independent
// implementation, PyTorch + Hugging Face transformers (float32, eager attention), committed in
// tests/data/golden/ by scripts/golden/make_logits_golden.py.
//
// Cases (see tests/data/golden/README.md):
//   micro_f32     `infllm make-model --preset micro --dtype f32`: GQA 2, tied, rope_theta 1e4
//   small_bf16    `infllm make-model --preset small --dtype bf16`: GQA 3, untied, rope_theta
//                 5e5 with llama3 rope scaling, bf16 weights
//   smollm2_q4_1  SmolLM2-135M-Instruct Q4_1 GGUF, when present (skipped otherwise)
//   hf_*          tiny models transformers built and saved itself (its config.json, bf16
//                 safetensors), committed: Llama with rope_parameters (the transformers 5 form),
//                 llama3 and linear scaling, Mistral, Qwen2 with YaRN in the legacy form, Qwen3,
//                 and Llama-2 with its SentencePiece tokenizer and chat template
// The make-model models are not committed: the test runs the built `infllm make-model` with the
// command line the golden .json records (make-model is deterministic), after checking float64
// sums of a few tensors so a change in make-model reads as such, not as a logits mismatch.
//
// Per position p the comparison is the house rule for f32 logits:
//   rel(p) = max_v |ours[p][v] - ref[p][v]| / max_v |ref[p][v]|  <  1e-4
// and greedy agreement: argmax ours[p] == argmax ref[p] wherever the reference's top-2 gap
// exceeds 1e-4 (below that the two implementations may legitimately order a near-tie either
// way). Logits come from teacher forcing: one token per step, logits every step (the decode
// path), and once more as a single prefill chunk, compared at its last position.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.hpp"
#include "model/formats/weights.hpp"
#include "model/forward/forward.hpp"
#include "model/forward/rope.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace infllm::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kRelTol = 1e-4;     // max |diff| / max |logit|, per position
constexpr double kGreedyGap = 1e-4;  // argmax must agree where the top-2 gap exceeds this
constexpr int kBlockTokens = 16;

fs::path golden_dir() { return fs::path(INFLLM_SOURCE_DIR) / "tests" / "data" / "golden"; }

json read_golden(const std::string& name) {
  std::ifstream in(golden_dir() / (name + ".json"));
  if (!in) throw std::runtime_error("cannot open golden " + name + ".json");
  return json::parse(in);
}

// The .bin rows: (logits_positions.size(), vocab) float32 little-endian.
std::vector<float> read_rows(const json& g) {
  const auto rows = g.at("logits_positions").size();
  const auto vocab = g.at("vocab_size").get<std::size_t>();
  std::vector<float> out(rows * vocab);
  std::ifstream in(golden_dir() / g.at("logits_file").get<std::string>(), std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data()), std::streamsize(out.size() * sizeof(float)));
  if (!in || in.peek() != EOF) throw std::runtime_error("golden .bin has the wrong size");
  return out;
}

// Runs the built `infllm make-model <args> --out dir`; returns its exit status.
int run_make_model(const json& args, const fs::path& dir) {
  std::string cmd = "make-model";
  for (const auto& a : args) cmd += " '" + a.get<std::string>() + "'";
  cmd += " --out '" + dir.string() + "'";
  const auto result = infllm::testing::run_infllm(cmd);
  if (result.code != 0) ADD_FAILURE() << cmd << " failed:\n" << result.out;
  return result.code;
}

// The tensor behind a Hugging Face name of weights.hpp's Weights (only the names the golden
// script fingerprints).
const Tensor* tensor_by_hf_name(const Weights& w, const std::string& name) {
  if (name == "model.embed_tokens.weight") return &w.embed;
  if (name == "model.layers.0.self_attn.q_proj.weight") return &w.layers.at(0).q;
  if (name == "model.layers.0.mlp.down_proj.weight") return &w.layers.at(0).down;
  if (name == "model.norm.weight") return &w.final_norm;
  if (name == "lm_head.weight") return &w.lm_head;
  return nullptr;
}

// Teacher-forced logits (n, vocab) at every position: one token per step over a block table
// of one request, logits every step.
std::vector<float> teacher_forced_logits(Forward& fwd, const std::vector<std::int32_t>& tokens,
                                         std::vector<float>* prefill_last) {
  const ModelConfig& c = fwd.config();
  const std::size_t n = tokens.size(), vocab = std::size_t(c.vocab_size);
  const int blocks = int((n + kBlockTokens - 1) / kBlockTokens);
  // Pool of `blocks` slots used in reverse order, so logical block i is not slot i.
  KvStore store;
  store.geometry = fwd.geometry(kBlockTokens, KvDtype::kF32);
  store.slot_bytes = store.geometry.block_bytes();
  store.slots = blocks;
  std::vector<std::byte> pool(store.slot_bytes * std::size_t(blocks));
  store.base = pool.data();
  std::vector<SlotId> table;
  for (int i = blocks - 1; i >= 0; --i) table.push_back(SlotId{i});

  std::vector<float> out(n * vocab);
  for (std::size_t p = 0; p < n; ++p) {
    const StepSequence seq{std::span(tokens).subspan(p, 1), std::int64_t(p), table, true};
    const auto logits = fwd.step(std::span(&seq, 1), store);
    if (logits.size() != vocab) {
      ADD_FAILURE() << "step at position " << p << " returned " << logits.size() << " logits";
      return {};
    }
    std::copy(logits.begin(), logits.end(), out.begin() + std::ptrdiff_t(p * vocab));
  }
  if (prefill_last) {
    // The whole sequence again as one prefill chunk, overwriting the same blocks.
    const StepSequence seq{tokens, 0, table, true};
    *prefill_last = fwd.step(std::span(&seq, 1), store);
  }
  return out;
}

struct RowReport {
  double rel = 0.0;  // max |diff| / max |ref|
  bool nan = false;
};

RowReport compare_row(const float* ours, const float* ref, std::size_t vocab) {
  RowReport r;
  double diff = 0.0, mag = 0.0;
  for (std::size_t v = 0; v < vocab; ++v) {
    if (!std::isfinite(ours[v])) r.nan = true;
    diff = std::max(diff, std::abs(double(ours[v]) - double(ref[v])));
    mag = std::max(mag, std::abs(double(ref[v])));
  }
  r.rel = diff / mag;
  return r;
}

std::size_t argmax(const float* row, std::size_t vocab) {
  return std::size_t(std::max_element(row, row + vocab) - row);
}

// Compares `ours` (n, vocab) with the golden: full rows where the .bin has them, the top-8
// reference logits and the argmax at every position. Returns the max relative error seen.
double expect_matches_golden(const json& g, const std::vector<float>& ours, double tol) {
  const auto vocab = g.at("vocab_size").get<std::size_t>();
  const auto n = g.at("tokens").size();
  const auto rows = read_rows(g);
  const auto& positions = g.at("logits_positions");
  double worst = 0.0;
  for (std::size_t r = 0; r < positions.size(); ++r) {
    const auto p = positions[r].get<std::size_t>();
    const RowReport rep = compare_row(&ours[p * vocab], &rows[r * vocab], vocab);
    EXPECT_FALSE(rep.nan) << "position " << p;
    EXPECT_LT(rep.rel, tol) << "position " << p;
    worst = std::max(worst, rep.rel);
  }
  int greedy_checked = 0, greedy_agree = 0;
  for (std::size_t p = 0; p < n; ++p) {
    const float* row = &ours[p * vocab];
    // Top-8 reference logits at every position, against the same |ref| scale.
    const double mag = g.at("max_abs_logit")[p].get<double>();
    const auto& ids = g.at("top_ids")[p];
    const auto& vals = g.at("top_logits")[p];
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const double rel =
          std::abs(double(row[ids[k].get<std::size_t>()]) - vals[k].get<double>()) / mag;
      EXPECT_LT(rel, tol) << "position " << p << " token " << ids[k];
      worst = std::max(worst, rel);
    }
    if (g.at("top2_gap")[p].get<double>() > kGreedyGap) {
      ++greedy_checked;
      const auto want = g.at("argmax")[p].get<std::size_t>();
      const auto got = argmax(row, vocab);
      greedy_agree += got == want;
      EXPECT_EQ(got, want) << "greedy token at position " << p;
    }
  }
  std::printf("[ golden   ] %s: %zu positions (%zu full rows), max rel error %.3g, greedy %d/%d\n",
              g.at("name").get<std::string>().c_str(), n, positions.size(), worst, greedy_agree,
              greedy_checked);
  return worst;
}

std::vector<std::int32_t> golden_tokens(const json& g) {
  return g.at("tokens").get<std::vector<std::int32_t>>();
}

void check_case(const json& g, const LoadedModel& m, double tol) {
  ASSERT_EQ(std::size_t(m.config.vocab_size), g.at("vocab_size").get<std::size_t>());
  cpu::CpuBackend backend;
  Forward fwd(m.config, m.weights, backend);
  const auto tokens = golden_tokens(g);
  std::vector<float> prefill_last;
  const auto ours = teacher_forced_logits(fwd, tokens, &prefill_last);
  ASSERT_EQ(ours.size(), tokens.size() * std::size_t(m.config.vocab_size));
  expect_matches_golden(g, ours, tol);

  // The prefill chunk's last row against the reference's last position.
  const auto vocab = std::size_t(m.config.vocab_size);
  const auto rows = read_rows(g);
  const auto& positions = g.at("logits_positions");
  ASSERT_EQ(positions.back().get<std::size_t>(), tokens.size() - 1);
  ASSERT_EQ(prefill_last.size(), vocab);
  const RowReport rep =
      compare_row(prefill_last.data(), &rows[(positions.size() - 1) * vocab], vocab);
  EXPECT_LT(rep.rel, tol) << "prefill chunk, last position";
}

class GoldenMakeModel : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenMakeModel, LogitsMatchTransformers) {
  const json g = read_golden(GetParam());
  const infllm::testing::TempDir dir("infllm-golden");
  ASSERT_EQ(run_make_model(g.at("model").at("args"), dir.path()), 0);
  const LoadedModel m = load_model(dir.path().string());

  // The weights must be the ones the reference saw: float64 sums of a few tensors.
  for (const auto& [name, want] : g.at("weight_sums").items()) {
    const Tensor* t = tensor_by_hf_name(m.weights, name);
    ASSERT_NE(t, nullptr) << name;
    double sum = 0.0, abs_sum = 0.0;
    for (float v : t->data) sum += v, abs_sum += std::abs(v);
    EXPECT_LE(std::abs(sum - want.get<double>()), 1e-9 * abs_sum)
        << name << ": make-model's output changed since the golden was made; rerun "
        << "scripts/golden/make_logits_golden.py";
  }
  check_case(g, m, kRelTol);
}

INSTANTIATE_TEST_SUITE_P(Presets, GoldenMakeModel, ::testing::Values("micro_f32", "small_bf16"),
                         [](const auto& info) { return std::string(info.param); });

// NOTE: tolerance. Both sides dequantize the same Q4_1 (and other) blocks to f32 and run an
// f32 forward pass, so the house 1e-4 applies unchanged; what differs is only summation order
// (OpenBLAS vs PyTorch GEMMs, softmax), measured at 4e-6 to 6e-6.
TEST(GoldenSmolLM2, LogitsMatchTransformers) {
  // About 50 decode steps over 135M parameters, the GEMMs in OpenBLAS: measured 3 s of CPU in
  // Release and 6 s in the Debug ASan+UBSan build, so it runs under the sanitizers too.
  const fs::path path = smollm2_gguf_path();
  if (!fs::exists(path)) GTEST_SKIP() << path << " not present (scripts/fetch_model.sh)";
  const json g = read_golden("smollm2_q4_1");
  ASSERT_EQ(fs::file_size(path), g.at("model").at("size_bytes").get<std::uintmax_t>())
      << path << " is not the GGUF the golden was made from";
  const LoadedModel m = load_model(path.string());
  check_case(g, m, kRelTol);
}

// Models saved by transformers itself, config.json and all. Besides the logits, the RoPE
// frequencies and attention factor must be the ones transformers computed from that file.
class GoldenTransformersSaved : public ::testing::TestWithParam<const char*> {};

LoadedModel load_saved(const json& g) {
  return load_model((golden_dir() / g.at("model").at("dir").get<std::string>()).string());
}

TEST_P(GoldenTransformersSaved, RopeAndLogitsMatchTransformers) {
  const json g = read_golden(GetParam());
  const LoadedModel m = load_saved(g);
  const auto inv_freq = rope_inv_freq(m.config);
  const auto want = g.at("rope").at("inv_freq").get<std::vector<double>>();
  ASSERT_EQ(inv_freq.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(inv_freq[i], want[i], 2e-6 * want[i]) << "inv_freq[" << i << "]";
  }
  EXPECT_NEAR(m.config.rope_scaling.attention_factor,
              g.at("rope").at("attention_scaling").get<double>(), 1e-12);
  check_case(g, m, kRelTol);
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenTransformersSaved,
                         ::testing::Values("hf_llama_rope_theta", "hf_llama3", "hf_llama_linear",
                                           "hf_mistral", "hf_qwen2_yarn_legacy", "hf_qwen3",
                                           "hf_llama2_spm"),
                         [](const auto& info) { return std::string(info.param); });

// The regression: transformers 5 writes rope_theta inside rope_parameters (no top-level key),
// and infllm read the default 10000 for a model whose config says 100000.
TEST(GoldenTransformersSaved, RopeThetaInsideRopeParametersIsRead) {
  const LoadedModel m = load_saved(read_golden("hf_llama_rope_theta"));
  EXPECT_EQ(m.config.rope_theta, 100000.0);
  EXPECT_EQ(m.config.rope_source, "rope_parameters");
}

// Llama-2 end to end as a user runs it: `infllm generate` on the directory transformers saved,
// with a `messages` input rendered by the Llama-2-chat template and encoded by the
// SentencePiece tokenizer, continues greedily with transformers' tokens (compared up to the
// first step whose top-2 gap is a near tie).
TEST(GoldenTransformersSaved, Llama2ChatGreedyGenerationMatchesTransformers) {
  const json g = read_golden("hf_llama2_spm");
  const json& greedy = g.at("greedy");
  const infllm::testing::TempDir dir("infllm-llama2-chat");
  const fs::path input = dir.path() / "chat.jsonl";
  const fs::path output = dir.path() / "out.jsonl";
  const auto want = greedy.at("tokens").get<std::vector<std::int32_t>>();
  std::ofstream(input) << json{{"id", "box-hill"}, {"messages", greedy.at("messages")}}.dump()
                       << "\n";
  const auto result = infllm::testing::run_infllm(
      "generate --quiet --temperature 0 --ignore-eos --max-new-tokens " +
      std::to_string(want.size()) + " --model " + (golden_dir() / "hf_llama2_spm").string() +
      " --input " + input.string() + " --output " + output.string());
  ASSERT_EQ(result.code, 0) << result.out;
  std::ifstream in(output);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const json record = json::parse(line);
  EXPECT_EQ(record.at("prompt_tokens").get<std::size_t>(), greedy.at("prompt_ids").size());
  const auto got = record.at("tokens").get<std::vector<std::int32_t>>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "greedy token " << i;
    if (got[i] != want[i] || greedy.at("top2_gap")[i].get<double>() <= kGreedyGap) break;
  }
}

}  // namespace
}  // namespace infllm::model
