// attention_test.cpp: micro-attention over rBlocks and the merge of partial states (CPU).
//
// The oracle is independent of the kernels: fp64, natural exp, the softmax written out directly
// for each (query token, query head) over the keys its causal mask allows, reading K and V
// through half.hpp's conversions (so f16/bf16 pools are compared on the same rounded values).
// Block contents, queries and the slot order are random with fixed seeds (SCOPED_TRACE).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention.hpp"
#include "backend/cpu/attention_kernels.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "core/attention_state.hpp"
#include "core/errors.hpp"
#include "core/half.hpp"

namespace infllm::cpu {
namespace {

// A pool of `slots` rBlocks filled with values from `fill`.
class TestPool {
 public:
  TestPool(const BlockGeometry& g, int slots) : g_(g), bytes_(g.block_bytes() * slots) {
    view_.base = bytes_.data();
    view_.slot_bytes = g.block_bytes();
    view_.slots = slots;
    view_.geometry = g;
  }
  const KvPool& view() const { return view_; }
  std::size_t elems() const { return bytes_.size() / g_.elem_bytes(); }

  void set(std::size_t i, float x) {
    std::byte* p = bytes_.data() + i * g_.elem_bytes();
    if (g_.dtype == KvDtype::kF16) {
      const f16 h = to_f16(x);
      std::memcpy(p, &h, 2);
    } else if (g_.dtype == KvDtype::kBF16) {
      const bf16 h = to_bf16(x);
      std::memcpy(p, &h, 2);
    } else {
      std::memcpy(p, &x, 4);
    }
  }
  // K (kind 0) or V (kind 1) of (slot, layer, kv head, token, d) as stored.
  double at(int slot, int layer, int head, int kind, int token, int d) const {
    const std::size_t off = slot * g_.block_bytes() +
                            (kind ? g_.v_offset(layer, head) : g_.k_offset(layer, head)) +
                            g_.token_offset(token) + d * g_.elem_bytes();
    const std::byte* p = bytes_.data() + off;
    std::uint16_t h;
    float f;
    switch (g_.dtype) {
      case KvDtype::kF16:
        std::memcpy(&h, p, 2);
        return to_f32(f16{h});
      case KvDtype::kBF16:
        std::memcpy(&h, p, 2);
        return to_f32(bf16{h});
      case KvDtype::kF32:
        break;
    }
    std::memcpy(&f, p, 4);
    return f;
  }

 private:
  BlockGeometry g_;
  std::vector<std::byte> bytes_;
  KvPool view_;
};

// One request: `len` tokens in blocks on shuffled slots, queries for tokens [first, first + n).
struct Request {
  std::vector<KvBlock> blocks;  // logical order
  std::vector<float> q;         // (n_tokens, q_heads, head_dim)
  int n_tokens = 1;
  std::int64_t first_pos = 0;
};

struct Shape {
  BlockGeometry g;
  int q_heads;
  int layer;
};

// Lays out requests of the given lengths on distinct random slots; returns the pool size needed.
std::vector<Request> make_requests(const Shape& s, const std::vector<int>& lens,
                                   const std::vector<int>& chunk, std::mt19937& rng, int* slots) {
  int total = 0;
  for (int len : lens) total += (len + s.g.block_tokens - 1) / s.g.block_tokens;
  std::vector<int> order(total);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Request> reqs;
  int next = 0;
  for (std::size_t r = 0; r < lens.size(); ++r) {
    Request req;
    for (int pos = 0; pos < lens[r]; pos += s.g.block_tokens) {
      req.blocks.push_back(
          KvBlock{SlotId{order[next++]}, pos, std::min(s.g.block_tokens, lens[r] - pos)});
    }
    req.n_tokens = chunk[r];
    req.first_pos = lens[r] - chunk[r];
    req.q.resize(static_cast<std::size_t>(req.n_tokens) * s.q_heads * s.g.head_dim);
    for (float& x : req.q) x = normal(rng);
    reqs.push_back(std::move(req));
  }
  *slots = total;
  return reqs;
}

void fill_random(TestPool& pool, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t i = 0; i < pool.elems(); ++i) pool.set(i, normal(rng));
}

// fp64 softmax(q.K * scale) @ V per (token, q head), causal by absolute position; and the lse.
struct Oracle {
  std::vector<double> out;  // (n_tokens, q_heads, head_dim)
  std::vector<double> lse;  // (n_tokens, q_heads); -inf when no key is visible
};

Oracle oracle(const TestPool& pool, const Shape& s, const Request& req, float scale) {
  const int hd = s.g.head_dim;
  const int group = s.q_heads / s.g.kv_heads;
  Oracle o;
  o.out.assign(static_cast<std::size_t>(req.n_tokens) * s.q_heads * hd, 0.0);
  o.lse.assign(static_cast<std::size_t>(req.n_tokens) * s.q_heads, -INFINITY);
  for (int i = 0; i < req.n_tokens; ++i) {
    for (int qh = 0; qh < s.q_heads; ++qh) {
      const std::size_t row = static_cast<std::size_t>(i) * s.q_heads + qh;
      const float* q = req.q.data() + row * hd;
      std::vector<double> scores;
      std::vector<std::pair<int, int>> keys;  // (slot, token)
      for (const KvBlock& b : req.blocks) {
        for (int t = 0; t < b.tokens; ++t) {
          if (b.first_pos + t > req.first_pos + i) continue;
          double dot = 0;
          for (int d = 0; d < hd; ++d) {
            dot += q[d] * pool.at(b.slot.value(), s.layer, qh / group, 0, t, d);
          }
          scores.push_back(dot * scale);
          keys.emplace_back(b.slot.value(), t);
        }
      }
      if (scores.empty()) continue;
      const double mx = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (std::size_t j = 0; j < scores.size(); ++j) {
        const double e = std::exp(scores[j] - mx);
        sum += e;
        for (int d = 0; d < hd; ++d) {
          o.out[row * hd + d] +=
              e * pool.at(keys[j].first, s.layer, qh / group, 1, keys[j].second, d);
        }
      }
      for (int d = 0; d < hd; ++d) o.out[row * hd + d] /= sum;
      o.lse[row] = mx + std::log(sum);
    }
  }
  return o;
}

// Partial states of one request, owned.
struct States {
  std::vector<float> o, m, l;
  States(const Shape& s, int n_tokens)
      : o(static_cast<std::size_t>(n_tokens) * s.q_heads * s.g.head_dim, -7.0f),
        m(static_cast<std::size_t>(n_tokens) * s.q_heads, -7.0f),
        l(m.size(), -7.0f) {}
  MaOutput out() { return MaOutput{o.data(), m.data(), l.data()}; }
  PartialsView view() const { return PartialsView{o.data(), m.data(), l.data()}; }
};

bool any_nan(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
}

// Checks merged states against the oracle: outputs within tol * max(1, |want|), lse likewise.
void expect_matches(const States& got, const Oracle& want, int head_dim, double tol) {
  ASSERT_FALSE(any_nan(got.o) || any_nan(got.m) || any_nan(got.l));
  const std::size_t rows = got.m.size();
  int bad = 0;
  for (std::size_t r = 0; r < rows && bad < 5; ++r) {
    const double lse = state_lse(got.m[r], got.l[r]);
    if (std::isinf(want.lse[r])) {
      EXPECT_EQ(got.l[r], 0.0f) << "row " << r << " sees no key";
      continue;
    }
    if (std::abs(lse - want.lse[r]) > tol * std::max(1.0, std::abs(want.lse[r]))) {
      ADD_FAILURE() << "row " << r << " lse " << lse << " want " << want.lse[r];
      ++bad;
    }
    for (int d = 0; d < head_dim; ++d) {
      const double g = got.o[r * head_dim + d] / got.l[r];
      const double w = want.out[r * head_dim + d];
      if (std::abs(g - w) > tol * std::max(1.0, std::abs(w))) {
        ADD_FAILURE() << "row " << r << " d " << d << " got " << g << " want " << w;
        if (++bad >= 5) break;
      }
    }
  }
}

// Runs MA over random partitions of the request's blocks (some empty) and merges them.
States ma_partitioned(const TestPool& pool, const Shape& s, const Request& req, float scale,
                      MaKernel kernel, int n_parts, std::mt19937& rng) {
  std::vector<std::vector<KvBlock>> parts(n_parts);
  for (const KvBlock& b : req.blocks) parts[rng() % n_parts].push_back(b);
  std::vector<States> partial;
  std::vector<PartialsView> views;
  for (const auto& blocks : parts) {
    partial.emplace_back(s, req.n_tokens);
    const MaQuery q{req.q.data(), req.n_tokens, req.first_pos, blocks};
    const MaOutput out = partial.back().out();
    micro_attention(pool.view(), MaParams{{s.layer, s.q_heads, scale, MaResult::kPartial}, kernel},
                    std::span(&q, 1), std::span(&out, 1));
  }
  for (const States& p : partial) views.push_back(p.view());
  States merged(s, req.n_tokens);
  merge_partials(views, static_cast<std::int64_t>(merged.m.size()), s.g.head_dim, merged.out());
  return merged;
}

std::string kernel_name(MaKernel k) {
  switch (k) {
    case MaKernel::kReference:
      return "reference";
    case MaKernel::kPortable:
      return "portable";
    case MaKernel::kAvx2:
      return "avx2";
    case MaKernel::kAvx512:
      return "avx512";
    case MaKernel::kAuto:
      break;
  }
  return "auto";
}

// Every kernel that can be compiled in; a test of one this CPU lacks is skipped (SKIP_UNLESS_HERE),
// so the list of tests is the same on every machine and a skip is visible.
std::vector<MaKernel> kernels_all() {
  return {MaKernel::kReference, MaKernel::kPortable, MaKernel::kAvx2, MaKernel::kAvx512};
}

#define SKIP_UNLESS_HERE(kernel)                                                          \
  if (!ma_kernel_supported(kernel)) {                                                     \
    GTEST_SKIP() << "this CPU (or build) lacks the " << kernel_name(kernel) << " kernel"; \
  }

// ---- Decode: partitions merged = full attention, for GQA ratios 1, 2, 3, 4, 7, 8. -------------

struct DecodeCase {
  MaKernel kernel;
  int group;
};

class DecodePartitions : public ::testing::TestWithParam<DecodeCase> {};

TEST_P(DecodePartitions, MergedPartitionsEqualFullAttention) {
  const auto [kernel, group] = GetParam();
  SKIP_UNLESS_HERE(kernel);
  for (int seed = 0; seed < 6; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    Shape s;
    s.g.block_tokens = std::vector<int>{1, 3, 16}[seed % 3];  // single-token blocks included
    s.g.head_dim = seed % 2 ? 64 : 128;
    s.g.kv_heads = std::max(1, 8 / group);
    s.g.layers = 2;
    s.q_heads = s.g.kv_heads * group;
    s.layer = 1;
    int slots = 0;
    const int len = 1 + static_cast<int>(rng() % 90);
    auto reqs = make_requests(s, {len}, {1}, rng, &slots);
    TestPool pool(s.g, slots);
    fill_random(pool, rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.g.head_dim));
    const States got = ma_partitioned(pool, s, reqs[0], scale, kernel, 1 + seed % 5, rng);
    expect_matches(got, oracle(pool, s, reqs[0], scale), s.g.head_dim, 1e-5);
  }
}

std::vector<DecodeCase> decode_cases() {
  std::vector<DecodeCase> c;
  for (MaKernel k : kernels_all()) {
    // 3 and 7 leave the last tile of 4 rows with 3 live rows (SmolLM2 and Qwen2.5 shapes).
    for (int g : {1, 2, 3, 4, 7, 8}) c.push_back(DecodeCase{k, g});
  }
  return c;
}

INSTANTIATE_TEST_SUITE_P(Gqa, DecodePartitions, ::testing::ValuesIn(decode_cases()),
                         [](const auto& info) {
                           return kernel_name(info.param.kernel) + "_group" +
                                  std::to_string(info.param.group);
                         });

// ---- Adversarial scores: exactly representable logits, compared with the fp64 oracle. ---------

enum class Logits { kLarge, kHuge, kEqual, kOneHot };

struct AdversarialCase {
  MaKernel kernel;
  Logits logits;
};

std::string logits_name(Logits l) {
  switch (l) {
    case Logits::kLarge:
      return "large";
    case Logits::kHuge:
      return "huge";
    case Logits::kEqual:
      return "equal";
    case Logits::kOneHot:
      break;
  }
  return "onehot";
}

class Adversarial : public ::testing::TestWithParam<AdversarialCase> {};

// K is zero but for dimension 0, q is A * e_0: score(t) = A * k[t][0] with no rounding.
TEST_P(Adversarial, NoNanAndMatchesOracle) {
  const auto [kernel, logits] = GetParam();
  SKIP_UNLESS_HERE(kernel);
  for (int seed = 0; seed < 4; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    Shape s;
    s.g.block_tokens = 4;
    s.g.head_dim = 64;
    s.g.kv_heads = 2;
    s.q_heads = 8;
    s.layer = 0;
    int slots = 0;
    auto reqs = make_requests(s, {33 + seed}, {3}, rng, &slots);
    TestPool pool(s.g, slots);
    fill_random(pool, rng);  // V random; K rewritten below
    const double a = logits == Logits::kHuge ? 1e30 : logits == Logits::kEqual ? 3.0 : 1e4;
    for (int slot = 0; slot < slots; ++slot) {
      for (int h = 0; h < s.g.kv_heads; ++h) {
        for (int t = 0; t < s.g.block_tokens; ++t) {
          for (int d = 0; d < s.g.head_dim; ++d) {
            float k = 0.0f;
            if (d == 0) {
              switch (logits) {
                case Logits::kLarge:
                case Logits::kHuge:
                  k = rng() % 2 ? 1.0f : -1.0f;
                  break;
                case Logits::kEqual:
                  k = 0.75f;
                  break;
                case Logits::kOneHot:
                  k = slot == 0 && t == 1 ? 1.0f : static_cast<float>(rng() % 8) * 1e-4f;
                  break;
              }
            }
            const std::size_t off =
                (slot * s.g.block_bytes() + s.g.k_offset(0, h) + s.g.token_offset(t)) / 4 + d;
            pool.set(off, k);
          }
        }
      }
    }
    for (std::size_t i = 0; i < reqs[0].q.size(); ++i) {
      reqs[0].q[i] = i % s.g.head_dim == 0 ? static_cast<float>(a) : 0.0f;
    }
    const States got = ma_partitioned(pool, s, reqs[0], 1.0f, kernel, 3, rng);
    expect_matches(got, oracle(pool, s, reqs[0], 1.0f), s.g.head_dim, 1e-5);
  }
}

std::vector<AdversarialCase> adversarial_cases() {
  std::vector<AdversarialCase> c;
  for (MaKernel k : kernels_all()) {
    for (Logits l : {Logits::kLarge, Logits::kHuge, Logits::kEqual, Logits::kOneHot}) {
      c.push_back(AdversarialCase{k, l});
    }
  }
  return c;
}

INSTANTIATE_TEST_SUITE_P(Scores, Adversarial, ::testing::ValuesIn(adversarial_cases()),
                         [](const auto& info) {
                           return kernel_name(info.param.kernel) + "_" +
                                  logits_name(info.param.logits);
                         });

// ---- Prefill chunk with the causal mask, starting mid-block. ----------------------------------

class PrefillChunk : public ::testing::TestWithParam<MaKernel> {};

TEST_P(PrefillChunk, MidBlockChunkMatchesCausalOracle) {
  const MaKernel kernel = GetParam();
  SKIP_UNLESS_HERE(kernel);
  for (int seed = 0; seed < 6; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(seed);
    Shape s;
    s.g.block_tokens = seed % 2 ? 16 : 5;
    s.g.head_dim = 64;
    s.g.kv_heads = 2;
    // Group 4 with a random chunk, or group 3 with chunks of 7, 23 and 30 tokens: 21, 69 and 90
    // rows per kv head, so the last tile of 4 rows has 1 or 2 live rows, and the longer chunks
    // take a second row group (kRowGroup = 64 rows) that ends in a part-filled tile.
    s.q_heads = seed % 2 ? 8 : 6;
    s.layer = 0;
    const int chunk =
        seed % 2 ? 1 + static_cast<int>(rng() % 40) : std::vector<int>{7, 23, 30}[seed / 2];
    // The chunk starts inside a block: the prefix is not a multiple of block_tokens.
    const int prefix = s.g.block_tokens * static_cast<int>(rng() % 4) + 1 +
                       static_cast<int>(rng() % (s.g.block_tokens - 1));
    int slots = 0;
    auto reqs = make_requests(s, {prefix + chunk}, {chunk}, rng, &slots);
    TestPool pool(s.g, slots);
    fill_random(pool, rng);
    const float scale = 0.125f;
    const States got = ma_partitioned(pool, s, reqs[0], scale, kernel, 1 + seed % 3, rng);
    expect_matches(got, oracle(pool, s, reqs[0], scale), s.g.head_dim, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, PrefillChunk, ::testing::ValuesIn(kernels_all()),
                         [](const auto& info) { return kernel_name(info.param); });

// ---- Differential: fast kernels against the reference kernel on random shapes. ----------------

struct DiffCase {
  MaKernel kernel;
  KvDtype dtype;
};

class FastVsReference : public ::testing::TestWithParam<DiffCase> {};

// A batch of requests (decode and prefill chunks) in one call; partial states compared through
// o / l and the lse, and the normalized output path.
TEST_P(FastVsReference, RandomShapesAgree) {
  const auto [kernel, dtype] = GetParam();
  SKIP_UNLESS_HERE(kernel);
  for (int seed = 0; seed < 6; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937 rng(100 + seed);
    Shape s;
    s.g.dtype = dtype;
    s.g.block_tokens = 1 + static_cast<int>(rng() % 20);
    // The SIMD kernels need head_dim % 8 == 0 (AVX2) or % 32 == 0 (AVX-512: 96 takes its
    // 32-column tail).
    const std::vector<int> dims = kernel == MaKernel::kAvx2     ? std::vector<int>{24, 64, 128}
                                  : kernel == MaKernel::kAvx512 ? std::vector<int>{32, 96, 128}
                                                                : std::vector<int>{20, 64, 128};
    s.g.head_dim = dims[rng() % dims.size()];
    s.g.kv_heads = 1 + static_cast<int>(rng() % 3);
    s.g.layers = 2;
    s.q_heads = s.g.kv_heads * std::vector<int>{1, 2, 3, 4, 8}[rng() % 5];
    s.layer = static_cast<int>(rng() % 2);
    const int n_req = 1 + static_cast<int>(rng() % 3);
    std::vector<int> lens, chunks;
    for (int r = 0; r < n_req; ++r) {
      lens.push_back(1 + static_cast<int>(rng() % 60));
      chunks.push_back(rng() % 2 ? 1 : 1 + static_cast<int>(rng() % lens.back()));
    }
    int slots = 0;
    auto reqs = make_requests(s, lens, chunks, rng, &slots);
    TestPool pool(s.g, slots);
    fill_random(pool, rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.g.head_dim));
    std::vector<MaQuery> queries;
    std::vector<States> fast, ref;
    std::vector<std::vector<float>> normalized;
    for (const Request& r : reqs) {
      queries.push_back(MaQuery{r.q.data(), r.n_tokens, r.first_pos, r.blocks});
      fast.emplace_back(s, r.n_tokens);
      ref.emplace_back(s, r.n_tokens);
      normalized.emplace_back(fast.back().o.size(), -7.0f);
    }
    std::vector<MaOutput> fast_out, ref_out, norm_out;
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      fast_out.push_back(fast[i].out());
      ref_out.push_back(ref[i].out());
      norm_out.push_back(MaOutput{normalized[i].data(), nullptr, nullptr});
    }
    micro_attention(pool.view(), {s.layer, s.q_heads, scale, MaResult::kPartial, kernel}, queries,
                    fast_out);
    micro_attention(pool.view(), {s.layer, s.q_heads, scale, MaResult::kNormalized, kernel},
                    queries, norm_out);
    micro_attention(pool.view(),
                    {s.layer, s.q_heads, scale, MaResult::kPartial, MaKernel::kReference}, queries,
                    ref_out);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      SCOPED_TRACE("request " + std::to_string(i));
      Oracle want;  // the reference kernel's states, as an oracle
      want.lse.resize(ref[i].m.size());
      want.out.resize(ref[i].o.size());
      for (std::size_t r = 0; r < ref[i].m.size(); ++r) {
        want.lse[r] = state_lse(ref[i].m[r], ref[i].l[r]);
        for (int d = 0; d < s.g.head_dim; ++d) {
          want.out[r * s.g.head_dim + d] = ref[i].o[r * s.g.head_dim + d] / ref[i].l[r];
        }
      }
      expect_matches(fast[i], want, s.g.head_dim, 1e-5);
      for (std::size_t j = 0; j < normalized[i].size(); ++j) {
        ASSERT_NEAR(normalized[i][j], want.out[j], 1e-5 * std::max(1.0, std::abs(want.out[j])))
            << j;
      }
    }
  }
}

std::vector<DiffCase> diff_cases() {
  std::vector<DiffCase> c;
  for (MaKernel k : kernels_all()) {
    if (k == MaKernel::kReference) continue;
    for (KvDtype d : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBF16}) c.push_back({k, d});
  }
  return c;
}

INSTANTIATE_TEST_SUITE_P(Kernels, FastVsReference, ::testing::ValuesIn(diff_cases()),
                         [](const auto& info) {
                           return kernel_name(info.param.kernel) + "_" +
                                  dtype_name(info.param.dtype);
                         });

// ---- Work split, merge edge cases, misuse. ----------------------------------------------------

// One long request on few kv heads: the driver splits its blocks into ranges on several
// threads and merges them; the result must not change.
TEST(MicroAttention, SplitBlockRangesMatchReference) {
  const int saved = threads();
  set_threads(4);
  std::mt19937 rng(7);
  Shape s;
  s.g.block_tokens = 4;
  s.g.head_dim = 64;
  s.g.kv_heads = 1;
  s.q_heads = 2;
  s.layer = 0;
  int slots = 0;
  auto reqs = make_requests(s, {317}, {1}, rng, &slots);
  TestPool pool(s.g, slots);
  fill_random(pool, rng);
  const MaQuery q{reqs[0].q.data(), 1, reqs[0].first_pos, reqs[0].blocks};
  States got(s, 1);
  const MaOutput out = got.out();
  micro_attention(pool.view(), {0, 2, 0.125f, MaResult::kPartial, MaKernel::kAuto},
                  std::span(&q, 1), std::span(&out, 1));
  set_threads(saved);
  expect_matches(got, oracle(pool, s, reqs[0], 0.125f), s.g.head_dim, 1e-5);
}

TEST(MergePartials, NoPartitionsGiveZeroOutputNotNan) {
  std::vector<float> out(3 * 8, -7.0f);
  merge_partials({}, 3, 8, MaOutput{out.data(), nullptr, nullptr}, MaResult::kNormalized);
  for (float x : out) EXPECT_EQ(x, 0.0f);
}

void merge_one_shot_vs_incremental(int hd) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  const int rows = 5, parts = 4;
  std::vector<std::vector<float>> o(parts), m(parts), l(parts);
  std::vector<PartialsView> views;
  for (int p = 0; p < parts; ++p) {
    for (int i = 0; i < rows * hd; ++i) o[p].push_back(normal(rng));
    for (int i = 0; i < rows; ++i) {
      const bool empty = p == 1;  // one empty partition
      m[p].push_back(empty ? -INFINITY : normal(rng));
      l[p].push_back(empty ? 0.0f : 1.0f + std::abs(normal(rng)));
      if (empty) std::fill(o[p].begin() + i * hd, o[p].begin() + (i + 1) * hd, 0.0f);
    }
    views.push_back(PartialsView{o[p].data(), m[p].data(), l[p].data()});
  }
  std::vector<float> ao(rows * hd, 0.0f), am(rows, -INFINITY), al(rows, 0.0f);
  for (const PartialsView& v : views)
    merge_partials_into({ao.data(), am.data(), al.data()}, v, rows, hd);
  std::vector<float> bo(rows * hd), bm(rows), bl(rows);
  merge_partials(views, rows, hd, {bo.data(), bm.data(), bl.data()});
  EXPECT_EQ(am, bm);  // the max does not depend on the order
  for (int i = 0; i < rows; ++i) EXPECT_NEAR(al[i], bl[i], 1e-6 * std::abs(bl[i])) << i;
  for (int i = 0; i < rows * hd; ++i) {
    EXPECT_NEAR(ao[i], bo[i], 1e-6 * std::max(1.0f, std::abs(bo[i]))) << i;
  }
  // Normalized: the one-shot output against the incremental state, normalized.
  std::vector<float> want(rows * hd), got(rows * hd, -7.0f);
  normalize_partials(PartialsView{ao.data(), am.data(), al.data()}, rows, hd, want.data());
  merge_partials(views, rows, hd, {got.data(), nullptr, nullptr}, MaResult::kNormalized);
  for (int i = 0; i < rows * hd; ++i) {
    EXPECT_NEAR(want[i], got[i], 1e-6 * std::max(1.0f, std::abs(want[i]))) << i;
  }
}

// The one-shot merge (one weighted sum per row, SIMD in 32- and 8-column pieces and a scalar
// tail) against folding the partitions in one at a time (merge_state, plain loops).
TEST(MergePartials, IncrementalMergeEqualsOneShot) {
  for (const int hd : {8, 44, 128}) {
    SCOPED_TRACE(hd);
    merge_one_shot_vs_incremental(hd);
  }
}

// Every partition empty (m = -inf, l = 0), and no partition at all, merge to the empty state:
// o = 0, m = -inf, l = 0, never NaN.
TEST(MergePartials, EmptyPartitionsAndNoPartitionsGiveTheEmptyState) {
  const int rows = 2, hd = 40;
  std::vector<float> zo(rows * hd, 0.0f), zm(rows, -INFINITY), zl(rows, 0.0f);
  const std::vector<PartialsView> empty(3, PartialsView{zo.data(), zm.data(), zl.data()});
  for (const std::size_t parts : {std::size_t{3}, std::size_t{0}}) {
    SCOPED_TRACE(parts);
    std::vector<float> o(rows * hd, -7.0f), m(rows, 7.0f), l(rows, 7.0f);
    merge_partials(std::span(empty.data(), parts), rows, hd, {o.data(), m.data(), l.data()});
    for (float x : o) EXPECT_EQ(x, 0.0f);
    for (int r = 0; r < rows; ++r) {
      EXPECT_EQ(m[r], -INFINITY);
      EXPECT_EQ(l[r], 0.0f);
    }
  }
}

// Both weighted sums (the SIMD one weighted_sum_fn picks on this CPU, and the portable one)
// against a double-precision sum, over lengths that take every piece of the SIMD loop.
TEST(MergePartials, WeightedSumsMatchADoubleSum) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const int n : {1, 7, 8, 31, 32, 44, 128}) {
    for (const int parts : {1, 3, 8}) {
      std::vector<std::vector<float>> x(parts, std::vector<float>(n));
      std::vector<const float*> ptrs;
      std::vector<float> scale(parts);
      for (int p = 0; p < parts; ++p) {
        for (float& v : x[p]) v = normal(rng);
        scale[p] = std::abs(normal(rng));
        ptrs.push_back(x[p].data());
      }
      for (const detail::WeightedSumFn fn :
           {detail::weighted_sum_fn(), &detail::weighted_sum_portable}) {
        std::vector<float> out(n, NAN);
        fn(out.data(), ptrs.data(), scale.data(), parts, n);
        for (int i = 0; i < n; ++i) {
          double want = 0.0;
          for (int p = 0; p < parts; ++p) want += double{x[p][i]} * scale[p];
          EXPECT_NEAR(out[i], want, 1e-5 * std::max(1.0, std::abs(want)))
              << "n " << n << " parts " << parts << " i " << i;
        }
      }
    }
  }
}

TEST(MicroAttention, SlotOutsideThePoolIsMisuse) {
  BlockGeometry g;
  TestPool pool(g, 2);
  std::vector<float> q(64, 0.0f), o(64);
  const KvBlock blocks[] = {{SlotId{2}, 0, 16}};
  const MaQuery query{q.data(), 1, 15, blocks};
  const MaOutput out{o.data(), nullptr, nullptr};
  EXPECT_THROW(micro_attention(pool.view(), {0, 1, 1.0f, MaResult::kNormalized, MaKernel::kAuto},
                               std::span(&query, 1), std::span(&out, 1)),
               InternalError);
}

TEST(MicroAttention, QueryHeadsNotAMultipleOfKvHeadsIsMisuse) {
  BlockGeometry g;
  g.kv_heads = 2;
  TestPool pool(g, 1);
  std::vector<float> q(3 * 64, 0.0f), o(3 * 64);
  const MaQuery query{q.data(), 1, 0, {}};
  const MaOutput out{o.data(), nullptr, nullptr};
  EXPECT_THROW(micro_attention(pool.view(), {0, 3, 1.0f, MaResult::kNormalized, MaKernel::kAuto},
                               std::span(&query, 1), std::span(&out, 1)),
               InternalError);
}

}  // namespace
}  // namespace infllm::cpu
