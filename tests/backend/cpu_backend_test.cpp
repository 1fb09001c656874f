// cpu_backend_test.cpp: the CPU backend through the device-neutral Backend interface: the KV
// pool it allocates, where store_kv puts each row (against the layout written out by hand, not
// through BlockGeometry's offsets), and MA split over two partitions then merged and normalized
// through the interface, against the fp64 reference kernel over all blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/attention.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/half.hpp"

namespace infllm {
namespace {

constexpr std::byte kPoison{0xA5};

float read_elem(const std::byte* p, KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case KvDtype::kF16: {
      f16 h;
      std::memcpy(&h.bits, p, 2);
      return to_f32(h);
    }
    case KvDtype::kBF16: {
      bf16 h;
      std::memcpy(&h.bits, p, 2);
      return to_f32(h);
    }
  }
  return NAN;
}

// The largest error of storing x as `dtype`: exact for f32, half an ulp of the format otherwise.
float storage_tolerance(float x, KvDtype dtype) {
  const float mag = std::fabs(x);
  switch (dtype) {
    case KvDtype::kF32:
      return 0.0f;
    case KvDtype::kF16:
      return mag * 0x1p-11f + 0x1p-24f;
    case KvDtype::kBF16:
      return mag * 0x1p-8f;
  }
  return 0.0f;
}

class CpuBackendStoreKv : public ::testing::TestWithParam<KvDtype> {};

TEST_P(CpuBackendStoreKv, EachRowLandsWhereTheBlockLayoutSays) {
  const KvDtype dtype = GetParam();
  const BlockGeometry g{4, 3, 2, 8, dtype};  // 4 tokens, 3 layers, 2 kv heads, head_dim 8
  const std::int32_t slots = 5;
  cpu::CpuBackend backend;
  ASSERT_TRUE(backend.host_memory());
  const std::unique_ptr<BackendMemory> mem =
      backend.allocate(g.block_bytes() * slots, MemoryUse::kKvPool);
  ASSERT_GE(mem->bytes(), g.block_bytes() * slots);
  std::memset(mem->data(), static_cast<int>(kPoison), mem->bytes());
  const KvStore store{mem->data(), g.block_bytes(), slots, g};

  // Rows for slots 3, 0, 3 at tokens 1, 3, 2 of layer 2.
  const std::vector<KvRowDest> rows = {{SlotId{3}, 1}, {SlotId{0}, 3}, {SlotId{3}, 2}};
  const int layer = 2;
  const std::size_t width = static_cast<std::size_t>(g.kv_heads * g.head_dim);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> k(rows.size() * width), v(rows.size() * width);
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  backend.store_kv(store, layer, rows, k.data(), v.data());

  // The layout by hand: block = [layer][K|V][kv_head][token][dim], elements of the pool's dtype.
  const std::size_t eb = dtype_bytes(dtype);
  const auto at = [&](SlotId slot, int kv, int head, int token, int d) {
    const std::size_t elem =
        ((((static_cast<std::size_t>(layer) * 2 + kv) * g.kv_heads + head) * g.block_tokens +
          token) *
             g.head_dim +
         d);
    return mem->data() + static_cast<std::size_t>(slot.value()) * g.block_bytes() + elem * eb;
  };
  std::vector<bool> written(mem->bytes(), false);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (int h = 0; h < g.kv_heads; ++h) {
      for (int d = 0; d < g.head_dim; ++d) {
        for (int kv = 0; kv < 2; ++kv) {
          const float want =
              (kv == 0 ? k : v)[r * width + static_cast<std::size_t>(h * g.head_dim + d)];
          const std::byte* p = at(rows[r].slot, kv, h, rows[r].token, d);
          EXPECT_NEAR(read_elem(p, dtype), want, storage_tolerance(want, dtype))
              << "row " << r << " head " << h << " dim " << d << (kv == 0 ? " K" : " V");
          for (std::size_t b = 0; b < eb; ++b) {
            written[static_cast<std::size_t>(p - mem->data()) + b] = true;
          }
        }
      }
    }
  }
  for (std::size_t i = 0; i < mem->bytes(); ++i) {
    if (!written[i]) {
      ASSERT_EQ(mem->data()[i], kPoison) << "byte " << i << " written";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CpuBackendStoreKv,
                         ::testing::Values(KvDtype::kF32, KvDtype::kF16, KvDtype::kBF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(CpuBackend, TwoPartitionsMergedThroughTheInterfaceEqualTheFp64Reference) {
  const BlockGeometry g{8, 1, 2, 16, KvDtype::kF32};
  const int q_heads = 4, tokens = 3;
  const std::int32_t slots = 6;
  cpu::CpuBackend cpu_backend;
  Backend& backend = cpu_backend;
  const std::unique_ptr<BackendMemory> mem =
      backend.allocate(g.block_bytes() * slots, MemoryUse::kKvPool);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto* f = reinterpret_cast<float*>(mem->data());
  for (std::size_t i = 0; i < mem->bytes() / sizeof(float); ++i) f[i] = normal(rng);
  const KvPool pool{mem->data(), g.block_bytes(), slots, g};
  // Six full blocks of one request (48 positions), queries at positions 48..50 see all of them.
  std::vector<KvBlock> all, a, b;
  for (int i = 0; i < 6; ++i) {
    const KvBlock blk{SlotId{(i * 5) % 6}, std::int64_t{i} * 8, 8};
    all.push_back(blk);
    (i % 3 == 1 ? b : a).push_back(blk);
  }
  const std::size_t rows = static_cast<std::size_t>(tokens * q_heads);
  std::vector<float> q(rows * 16);
  for (float& x : q) x = normal(rng);
  const MaParams partial{0, q_heads, 0.25f, MaResult::kPartial};

  std::vector<float> acc_o(rows * 16, NAN), acc_m(rows, NAN), acc_l(rows, NAN);
  std::vector<float> part_o(rows * 16, NAN), part_m(rows, NAN), part_l(rows, NAN);
  const MaQuery qa{q.data(), tokens, 48, a}, qb{q.data(), tokens, 48, b};
  const MaOutput acc{acc_o.data(), acc_m.data(), acc_l.data()};
  const MaOutput part{part_o.data(), part_m.data(), part_l.data()};
  backend.attention(pool, partial, std::span(&qa, 1), std::span(&acc, 1));
  backend.attention(pool, partial, std::span(&qb, 1), std::span(&part, 1));
  backend.merge_partials_into(acc, PartialsView{part_o.data(), part_m.data(), part_l.data()},
                              static_cast<std::int64_t>(rows), 16);
  std::vector<float> out(rows * 16, NAN);
  backend.normalize_partials(PartialsView{acc_o.data(), acc_m.data(), acc_l.data()},
                             static_cast<std::int64_t>(rows), 16, out.data());

  std::vector<float> ref(rows * 16, NAN);
  const MaQuery qall{q.data(), tokens, 48, all};
  const MaOutput ref_out{ref.data(), nullptr, nullptr};
  cpu::micro_attention(
      pool, cpu::MaParams{{0, q_heads, 0.25f, MaResult::kNormalized}, cpu::MaKernel::kReference},
      std::span(&qall, 1), std::span(&ref_out, 1));
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_FALSE(std::isnan(out[i])) << i;
    EXPECT_NEAR(out[i], ref[i], 1e-5f * (1.0f + std::fabs(ref[i]))) << i;
  }
}

}  // namespace
}  // namespace infllm
