// attention_test.cpp: the KV-pool kernels (kernels/attention.cu) over the CUDA-on-CPU layer.
//
// Micro-attention is checked against the fp64 reference (backend/cpu/attention_reference.hpp:
// every visible key's score in double, written-out softmax), on the same stored K and V values:
// decode and prefill chunks, GQA groups, head dims that are and are not multiples of 32, f32,
// f16 and bf16 pools, blocks in shuffled slot order with a partial tail, requests with no block,
// and the split of a request's blocks over several thread blocks. store_kv is checked byte for
// byte against the CPU backend's store. Outputs are poisoned (NaN) before every launch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention_reference.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/attention_state.hpp"
#include "core/half.hpp"
#include "kernels/attention.cuh"
#include "kernels/device_buffer.hpp"

namespace infllm::kernels {
namespace {

using test::DeviceBuffer;

struct Case {
  const char* name;
  KvDtype dtype;
  int head_dim;
  int q_heads;
  int kv_heads;
  int blocks_per_split;
  bool normalized;
};

// A request: `len` tokens of KV in blocks on shuffled slots, queries for [first, first + n).
struct Req {
  int len;
  int n_tokens;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MicroAttention : public ::testing::TestWithParam<Case> {};

TEST_P(MicroAttention, MatchesTheFp64Reference) {
  const Case c = GetParam();
  const int block_tokens = 16, layer = 1;
  const BlockGeometry g{block_tokens, 2, c.kv_heads, c.head_dim, c.dtype};
  // Decode at 70 tokens, a prefill chunk of 20 ending at 53, a request with nothing yet, and a
  // chunk that starts a request (its first block partly filled).
  const std::vector<Req> reqs = {{70, 1}, {53, 20}, {0, 1}, {9, 9}};
  std::vector<std::vector<KvBlock>> blocks(reqs.size());
  int slots = 0;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    for (int first = 0; first < reqs[i].len; first += block_tokens) {
      blocks[i].push_back(
          KvBlock{SlotId{slots++}, first, std::min(block_tokens, reqs[i].len - first)});
    }
  }
  std::mt19937 rng(42 + c.head_dim);
  // Shuffle slot numbers over the whole pool, and the order of each request's blocks.
  std::vector<int> perm(static_cast<std::size_t>(slots));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  for (auto& bs : blocks) {
    for (KvBlock& b : bs) b.slot = SlotId{perm[static_cast<std::size_t>(b.slot.value())]};
    std::shuffle(bs.begin(), bs.end(), rng);
  }

  // The pool, random values stored in its dtype.
  std::vector<std::byte> pool(g.block_bytes() * static_cast<std::size_t>(slots + 1));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (std::size_t i = 0; i < pool.size() / g.elem_bytes(); ++i) {
    const float x = dist(rng);
    std::byte* p = pool.data() + i * g.elem_bytes();
    if (c.dtype == KvDtype::kF16) {
      const f16 h = to_f16(x);
      std::memcpy(p, &h, 2);
    } else if (c.dtype == KvDtype::kBF16) {
      const bf16 h = to_bf16(x);
      std::memcpy(p, &h, 2);
    } else {
      std::memcpy(p, &x, 4);
    }
  }
  DeviceBuffer<std::byte> d_pool(pool);

  const std::size_t row = static_cast<std::size_t>(c.q_heads) * c.head_dim;
  std::vector<std::vector<float>> q(reqs.size());
  std::vector<std::unique_ptr<DeviceBuffer<float>>> d_q, d_o, d_m, d_l;
  std::vector<AttnRequest> table;
  std::vector<AttnBlock> block_table;
  std::vector<AttnPlanRequest> plan_reqs;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const int n = reqs[i].n_tokens;
    q[i].resize(n * row);
    for (float& x : q[i]) x = dist(rng) * 2.0f;
    d_q.push_back(std::make_unique<DeviceBuffer<float>>(q[i]));
    d_o.push_back(std::make_unique<DeviceBuffer<float>>(n * row));
    d_m.push_back(std::make_unique<DeviceBuffer<float>>(n * c.q_heads));
    d_l.push_back(std::make_unique<DeviceBuffer<float>>(n * c.q_heads));
    d_o.back()->poison();
    d_m.back()->poison();
    d_l.back()->poison();
    AttnRequest r;
    r.q = d_q.back()->get();
    r.o = d_o.back()->get();
    r.m = c.normalized ? nullptr : d_m.back()->get();
    r.l = c.normalized ? nullptr : d_l.back()->get();
    r.first_pos = reqs[i].len - n;
    r.n_tokens = n;
    table.push_back(r);
    plan_reqs.push_back(AttnPlanRequest{n, static_cast<std::int32_t>(block_table.size()),
                                        static_cast<std::int32_t>(blocks[i].size())});
    for (const KvBlock& b : blocks[i]) {
      block_table.push_back(AttnBlock{b.first_pos, b.slot.value(), b.tokens});
    }
  }
  const int group = c.q_heads / c.kv_heads;
  const AttnPlan plan = plan_attention(plan_reqs, c.kv_heads, group, c.blocks_per_split);
  DeviceBuffer<AttnRequest> d_table(table);
  DeviceBuffer<AttnBlock> d_blocks(block_table.empty() ? std::vector<AttnBlock>(1) : block_table);
  DeviceBuffer<AttnItem> d_items(plan.items);
  DeviceBuffer<AttnCombine> d_combines(plan.combines);
  DeviceBuffer<float> scratch(attention_scratch_floats(plan, c.head_dim));
  scratch.poison();

  AttnParams params;
  params.pool = AttnPool{d_pool.get(), kv_layout(g, g.block_bytes(), layer)};
  params.q_heads = c.q_heads;
  params.group = group;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  params.score_scale = scale * kLog2e;
  params.normalized = c.normalized;
  ASSERT_EQ(launch_attention(params, d_table.get(), d_blocks.get(), d_items.get(),
                             static_cast<int>(plan.items.size()), d_combines.get(),
                             static_cast<int>(plan.combines.size()), scratch.get(), plan.partials,
                             nullptr),
            cudaSuccess);

  KvPool host_pool{pool.data(), g.block_bytes(), slots + 1, g};
  cpu::MaParams mp;
  mp.layer = layer;
  mp.q_heads = c.q_heads;
  mp.scale = scale;
  mp.result = c.normalized ? MaResult::kNormalized : MaResult::kPartial;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    const int n = reqs[i].n_tokens;
    std::vector<float> want_o(n * row), want_m(n * c.q_heads), want_l(n * c.q_heads);
    cpu::detail::reference_micro_attention(host_pool, mp,
                                           MaQuery{q[i].data(), n, reqs[i].len - n, blocks[i]},
                                           MaOutput{want_o.data(), want_m.data(), want_l.data()});
    const std::vector<float> o = d_o[i]->download();
    const std::vector<float> m = d_m[i]->download(), l = d_l[i]->download();
    for (int r = 0; r < n * c.q_heads; ++r) {
      // Compare normalized outputs; a partial state's o is normalized by its l here.
      const double inv_got = c.normalized ? 1.0 : (l[r] > 0 ? 1.0 / l[r] : 0.0);
      const double inv_want = c.normalized ? 1.0 : (want_l[r] > 0 ? 1.0 / want_l[r] : 0.0);
      for (int d = 0; d < c.head_dim; ++d) {
        const double got = o[r * c.head_dim + d] * inv_got;
        const double want = want_o[r * c.head_dim + d] * inv_want;
        ASSERT_TRUE(std::isfinite(got)) << "row " << r << " dim " << d;
        ASSERT_NEAR(got, want, 2e-5 * (1.0 + std::abs(want))) << "row " << r << " dim " << d;
      }
      if (!c.normalized) {
        if (want_l[r] == 0.0f) {
          EXPECT_EQ(l[r], 0.0f) << "row " << r;
          EXPECT_EQ(m[r], -INFINITY) << "row " << r;
        } else {
          EXPECT_NEAR(m[r], want_m[r], 1e-5 * (1.0 + std::abs(want_m[r]))) << "row " << r;
          EXPECT_NEAR(l[r], want_l[r], 2e-5 * want_l[r]) << "row " << r;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, MicroAttention,
    ::testing::Values(Case{"f32_hd64_gqa3_nosplit", KvDtype::kF32, 64, 6, 2, 100, true},
                      Case{"f32_hd64_gqa3_split1", KvDtype::kF32, 64, 6, 2, 1, true},
                      Case{"bf16_hd32_mha_split2_partial", KvDtype::kBF16, 32, 2, 2, 2, false},
                      Case{"f16_hd96_gqa4_split3", KvDtype::kF16, 96, 4, 1, 3, true},
                      Case{"bf16_hd128_gqa2_split2_partial", KvDtype::kBF16, 128, 4, 2, 2, false},
                      Case{"f32_hd256_gqa1_split4", KvDtype::kF32, 256, 1, 1, 4, true}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// Two disjoint halves of a request's blocks, attended separately as partial states, merged by
// the merge kernel and normalized by the normalize kernel: the fp64 reference over all blocks.
TEST(PartialStateKernels, MergeOfDisjointHalvesIsTheWhole) {
  const BlockGeometry g{16, 1, 1, 64, KvDtype::kF32};
  const int q_heads = 3, n = 5, len = 80;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> pool(g.block_bytes() / 4 * 5);
  for (float& x : pool) x = dist(rng);
  std::vector<float> q(n * q_heads * 64);
  for (float& x : q) x = dist(rng);
  std::vector<KvBlock> all;
  for (int b = 0; b < 5; ++b) all.push_back(KvBlock{SlotId{4 - b}, b * 16, 16});
  // Half A gets blocks 0, 2, 4 (query positions 75..79 see all of them), half B 1 and 3; one row
  // set is empty in B for nothing: a state with no key merges as the identity.
  const std::vector<KvBlock> half_a = {all[0], all[2], all[4]}, half_b = {all[1], all[3]};

  DeviceBuffer<float> d_pool(pool), d_q(q);
  const std::size_t rows = static_cast<std::size_t>(n) * q_heads;
  DeviceBuffer<float> ao(rows * 64), am(rows), al(rows), bo(rows * 64), bm(rows), bl(rows);
  for (auto* b : {&ao, &am, &al, &bo, &bm, &bl}) b->poison();
  auto run = [&](const std::vector<KvBlock>& half, float* o, float* m, float* l) {
    std::vector<AttnBlock> bt;
    for (const KvBlock& b : half) bt.push_back(AttnBlock{b.first_pos, b.slot.value(), b.tokens});
    AttnRequest r;
    r.q = d_q.get();
    r.o = o;
    r.m = m;
    r.l = l;
    r.first_pos = len - n;
    r.n_tokens = n;
    const AttnPlan plan =
        plan_attention({AttnPlanRequest{n, 0, static_cast<int>(bt.size())}}, 1, q_heads, 1);
    DeviceBuffer<AttnRequest> d_r(std::vector<AttnRequest>{r});
    DeviceBuffer<AttnBlock> d_b(bt);
    DeviceBuffer<AttnItem> d_i(plan.items);
    DeviceBuffer<AttnCombine> d_c(plan.combines);
    DeviceBuffer<float> scratch(attention_scratch_floats(plan, 64));
    AttnParams p;
    p.pool = AttnPool{reinterpret_cast<const std::byte*>(d_pool.get()),
                      kv_layout(g, g.block_bytes(), 0)};
    p.q_heads = q_heads;
    p.group = q_heads;
    p.score_scale = 0.125f * kLog2e;
    p.normalized = false;
    ASSERT_EQ(
        launch_attention(p, d_r.get(), d_b.get(), d_i.get(), static_cast<int>(plan.items.size()),
                         d_c.get(), static_cast<int>(plan.combines.size()), scratch.get(),
                         plan.partials, nullptr),
        cudaSuccess);
  };
  run(half_a, ao.get(), am.get(), al.get());
  run(half_b, bo.get(), bm.get(), bl.get());
  ASSERT_EQ(launch_merge_partials_into(ao.get(), am.get(), al.get(), bo.get(), bm.get(), bl.get(),
                                       static_cast<std::int64_t>(rows), 64, nullptr),
            cudaSuccess);
  DeviceBuffer<float> out(rows * 64);
  out.poison();
  ASSERT_EQ(launch_normalize_partials(ao.get(), al.get(), static_cast<std::int64_t>(rows), 64,
                                      out.get(), nullptr),
            cudaSuccess);

  std::vector<float> want(rows * 64);
  KvPool host_pool{reinterpret_cast<const std::byte*>(pool.data()), g.block_bytes(), 5, g};
  cpu::MaParams mp;
  mp.q_heads = q_heads;
  mp.scale = 0.125f;
  mp.result = MaResult::kNormalized;
  cpu::detail::reference_micro_attention(host_pool, mp, MaQuery{q.data(), n, len - n, all},
                                         MaOutput{want.data(), nullptr, nullptr});
  const std::vector<float> got = out.download();
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 2e-5 * (1.0 + std::abs(want[i]))) << "element " << i;
  }
  // In place: out may be o.
  ASSERT_EQ(launch_normalize_partials(ao.get(), al.get(), static_cast<std::int64_t>(rows), 64,
                                      ao.get(), nullptr),
            cudaSuccess);
  EXPECT_EQ(ao.download(), got);
}

TEST(KvStoreKernel, StoresLikeTheCpuBackend) {
  for (KvDtype dtype : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const BlockGeometry g{8, 3, 2, 40, dtype};
    const int slots = 4, layer = 2;
    const std::vector<KvRowDest> dests = {
        {SlotId{2}, 0}, {SlotId{2}, 7}, {SlotId{0}, 3}, {SlotId{3}, 5}};
    std::mt19937 rng(9);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> k(dests.size() * 2 * 40), v(k.size());
    for (float& x : k) x = dist(rng);
    for (float& x : v) x = dist(rng);
    // Both pools start as the same garbage, so bytes nobody should write must stay as they were.
    std::vector<std::byte> cpu_pool(g.block_bytes() * slots, std::byte{0x5a});
    cpu::CpuBackend cpu;
    cpu.store_kv(KvStore{cpu_pool.data(), g.block_bytes(), slots, g}, layer, dests, k.data(),
                 v.data());
    DeviceBuffer<std::byte> d_pool(std::vector<std::byte>(cpu_pool.size(), std::byte{0x5a}));
    std::vector<KvDest> kd;
    for (const KvRowDest& d : dests) kd.push_back(KvDest{d.slot.value(), d.token});
    DeviceBuffer<KvDest> d_dests(kd);
    DeviceBuffer<float> d_k(k), d_v(v);
    ASSERT_EQ(launch_store_kv(d_pool.get(), kv_layout(g, g.block_bytes(), layer), d_dests.get(),
                              dests.size(), d_k.get(), d_v.get(), nullptr),
              cudaSuccess);
    EXPECT_TRUE(d_pool.download() == cpu_pool);
  }
}

}  // namespace
}  // namespace infllm::kernels
