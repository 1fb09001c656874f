// attention.cpp: the MA driver (validation, work split, threads) and the merge of partial states.
//
// Work items: (request, kv heads, query rows, block range). A request's query rows per kv head
// (token, head within the group) up to kRowGroup stay in one item with all kv heads, so the item
// reads each block's layer (K and V of every head) as one contiguous stream; longer prefill
// chunks get an item per kv head and row group. Blocks are cut into ranges when there are too
// few items to keep every thread busy (one long request). An item walks its blocks in order and
// hands each block's K and V runs of a kv head to the ISA's block step for all the rows of that
// head: the KV of a kv head is read from memory once per row group, i.e. once for all query
// heads of the group in decode. Items of split block ranges write partial states to scratch,
// merged afterwards per request.
#include "backend/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/attention_kernels.hpp"
#include "backend/cpu/attention_parallel.hpp"
#include "backend/cpu/attention_reference.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "core/attention_state.hpp"
#include "core/errors.hpp"

namespace infllm::cpu {

namespace {

using detail::MaIsa;
using detail::MaKeys;
using detail::MaRows;

// Query rows per item: (rows, head_dim) queries and outputs stay in L2 while the item's blocks
// stream past. Decode has `group` rows per (request, kv head), well under this.
constexpr int kRowGroup = 64;
// A block range split off for parallelism has at least kMinSplitBlocks blocks, and long
// requests are split into ranges of about kSplitBlocks blocks (merging one range's partial state
// costs about as much as reading one of its blocks).
constexpr int kMinSplitBlocks = 16;
constexpr int kSplitBlocks = 64;

void check(bool ok, const std::string& what) {
  if (!ok) throw InternalError("micro_attention: " + what);
}

void validate(const KvPool& pool, const MaParams& params, std::span<const MaQuery> queries,
              std::span<const MaOutput> outputs) {
  const BlockGeometry& g = pool.geometry;
  g.validate();
  check(queries.size() == outputs.size(), "queries and outputs differ in count");
  check(params.layer >= 0 && params.layer < g.layers, "layer out of range");
  check(params.q_heads > 0 && params.q_heads % g.kv_heads == 0,
        "q_heads is not a multiple of kv_heads");
  check(pool.slot_bytes >= g.block_bytes(), "slot_bytes is smaller than a block");
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const MaQuery& q = queries[i];
    const MaOutput& o = outputs[i];
    check(q.n_tokens >= 0, "negative n_tokens");
    if (q.n_tokens == 0) continue;
    check(q.q != nullptr && o.o != nullptr, "null q or o");
    check(params.result == MaResult::kNormalized || (o.m != nullptr && o.l != nullptr),
          "partial states need m and l");
    for (const KvBlock& b : q.blocks) {
      check(pool.base != nullptr, "null pool");
      check(b.slot.value() >= 0 && b.slot.value() < pool.slots,
            "slot " + std::to_string(b.slot.value()) + " outside the pool");
      check(b.tokens >= 1 && b.tokens <= g.block_tokens, "block tokens outside 1..block_tokens");
    }
  }
}

MaIsa pick_isa(MaKernel kernel, int head_dim) {
  const bool avx2_ok = detail::avx2_supported() && head_dim % 8 == 0;
  const bool avx512_ok = detail::avx512_supported() && head_dim % 32 == 0;
  if (kernel == MaKernel::kAvx2) {
    check(avx2_ok, "the AVX2 kernel needs an AVX2+FMA+F16C CPU and head_dim % 8 == 0");
    return detail::avx2_isa();
  }
  if (kernel == MaKernel::kAvx512) {
    check(avx512_ok, "the AVX-512 kernel needs an AVX-512 F/BW/DQ/VL CPU and head_dim % 32 == 0");
    return detail::avx512_isa();
  }
  if (kernel == MaKernel::kAuto && avx512_ok) return detail::avx512_isa();
  if (kernel == MaKernel::kAuto && avx2_ok) return detail::avx2_isa();
  return detail::portable_isa();
}

struct Item {
  int query;
  int head_begin, head_end;    // kv heads
  int row_begin, row_end;      // rows (token * group + g) of each of those kv heads
  int block_begin, block_end;  // into query.blocks
  int split;                   // -1: write the output directly; else index of its scratch state
};

// Partial states of the block ranges of one request: (splits, n_tokens * q_heads, head_dim).
struct SplitStates {
  int splits = 1;
  std::vector<float> o, m, l;
};

// Per-thread buffers of an item: for each of its kv heads, its rows padded to a multiple of
// kMaxTileRows, head-major.
struct Scratch {
  std::vector<float> q, o, m, l;  // (heads, rows, head_dim) / (heads, rows)
  std::vector<std::int64_t> pos;  // (rows), the same for every head
  std::vector<float> step;        // detail::block_update_scratch
};

void run_item(const KvPool& pool, const MaParams& params, const MaIsa& isa, const Item& item,
              const MaQuery& query, const MaOutput& out, SplitStates& split) {
  const BlockGeometry& g = pool.geometry;
  const int hd = g.head_dim;
  const int group = params.q_heads / g.kv_heads;
  const int heads = item.head_end - item.head_begin;
  const int rows = item.row_end - item.row_begin;
  const int padded =
      (rows + detail::kMaxTileRows - 1) / detail::kMaxTileRows * detail::kMaxTileRows;
  const std::size_t head_rows = static_cast<std::size_t>(padded);  // rows per head in scratch
  thread_local Scratch s;
  s.q.resize(heads * head_rows * hd);
  s.o.assign(heads * head_rows * hd, 0.0f);
  s.m.assign(heads * head_rows, -INFINITY);
  s.l.assign(heads * head_rows, 0.0f);
  s.pos.resize(padded);
  s.step.resize(detail::block_update_scratch(g.block_tokens, hd));
  const float qscale = params.scale * kLog2e;
  // (head i of the item, row r) -> index of (token, q head) in the request's outputs.
  auto out_row = [&](int i, int r) {
    const int row = item.row_begin + std::min(r, rows - 1);  // padding repeats the last row
    return static_cast<std::size_t>(row / group) * params.q_heads +
           static_cast<std::size_t>(item.head_begin + i) * group + row % group;
  };
  for (int i = 0; i < heads; ++i) {
    for (int r = 0; r < padded; ++r) {
      const float* src = query.q + out_row(i, r) * hd;
      float* dst = s.q.data() + (i * head_rows + r) * hd;
      for (int d = 0; d < hd; ++d) dst[d] = src[d] * qscale;
    }
  }
  if (isa.layout != nullptr) isa.layout(s.q.data(), heads * head_rows, hd, g.dtype, true);
  for (int r = 0; r < padded; ++r) {
    s.pos[r] = query.first_pos + static_cast<std::int64_t>(out_row(0, r) / params.q_heads);
  }
  const std::int64_t min_pos = s.pos[0];
  const std::int64_t max_pos = s.pos[padded - 1];
  const std::size_t run_bytes = g.head_elems() * g.elem_bytes();
  auto block_base = [&](int b) {
    return pool.base + static_cast<std::size_t>(query.blocks[b].slot.value()) * pool.slot_bytes;
  };
  for (int b = item.block_begin; b < item.block_end; ++b) {
    const KvBlock& blk = query.blocks[b];
    if (blk.first_pos > max_pos) continue;  // entirely in the future of every row
    MaKeys keys;
    keys.dtype = g.dtype;
    keys.first_pos = blk.first_pos;
    keys.tokens = blk.tokens;
    keys.masked = blk.first_pos + blk.tokens - 1 > min_pos;
    keys.run_bytes = run_bytes;
    for (int i = 0; i < heads; ++i) {
      const int h = item.head_begin + i;
      if (i + 1 < heads) {
        keys.next_k = block_base(b) + g.k_offset(params.layer, h + 1);
        keys.next_v = block_base(b) + g.v_offset(params.layer, h + 1);
      } else if (b + 1 < item.block_end) {
        keys.next_k = block_base(b + 1) + g.k_offset(params.layer, item.head_begin);
        keys.next_v = block_base(b + 1) + g.v_offset(params.layer, item.head_begin);
      } else {
        keys.next_k = keys.next_v = nullptr;
      }
      keys.k = block_base(b) + g.k_offset(params.layer, h);
      keys.v = block_base(b) + g.v_offset(params.layer, h);
      const std::size_t at = i * head_rows;
      const MaRows mr{s.q.data() + at * hd,
                      s.pos.data(),
                      s.o.data() + at * hd,
                      s.m.data() + at,
                      s.l.data() + at,
                      rows,
                      hd};
      isa.update(mr, keys, s.step.data());
    }
  }
  if (isa.layout != nullptr) isa.layout(s.o.data(), heads * head_rows, hd, g.dtype, false);
  // Write the real rows out.
  for (int i = 0; i < heads; ++i) {
    for (int r = 0; r < rows; ++r) {
      const std::size_t hr = out_row(i, r);
      const std::size_t at = i * head_rows + r;
      const float* o = s.o.data() + at * hd;
      if (item.split >= 0) {
        const std::size_t to =
            static_cast<std::size_t>(item.split) * query.n_tokens * params.q_heads + hr;
        std::copy(o, o + hd, split.o.data() + to * hd);
        split.m[to] = s.m[at];
        split.l[to] = s.l[at];
      } else if (params.result == MaResult::kNormalized) {
        normalize_state(o, s.l[at], out.o + hr * hd, hd);
      } else {
        std::copy(o, o + hd, out.o + hr * hd);
        out.m[hr] = s.m[at];
        out.l[hr] = s.l[at];
      }
    }
  }
}

}  // namespace

bool ma_kernel_supported(MaKernel kernel) {
  if (kernel == MaKernel::kAvx2) return detail::avx2_supported();
  if (kernel == MaKernel::kAvx512) return detail::avx512_supported();
  return true;
}

const char* ma_auto_kernel_name() {
  return detail::avx512_supported() ? "avx512" : detail::avx2_supported() ? "avx2" : "portable";
}

void micro_attention(const KvPool& pool, const MaParams& params, std::span<const MaQuery> queries,
                     std::span<const MaOutput> outputs) {
  validate(pool, params, queries, outputs);
  if (params.kernel == MaKernel::kReference) {
    for (std::size_t i = 0; i < queries.size(); ++i) {
      if (queries[i].n_tokens > 0)
        detail::reference_micro_attention(pool, params, queries[i], outputs[i]);
    }
    return;
  }
  const BlockGeometry& g = pool.geometry;
  const MaIsa isa = pick_isa(params.kernel, g.head_dim);
  const int group = params.q_heads / g.kv_heads;
  const int threads = cpu::threads();

  // Items: a request whose rows per kv head fit one row group (decode, short chunks) keeps all
  // its kv heads in one item, so an item streams each block's layer contiguously (K and V of
  // every head); longer chunks get an item per (kv head, row group). Then, when that leaves
  // threads idle (few long requests), block ranges are split off and merged afterwards.
  auto rows_of = [&](const MaQuery& q) { return q.n_tokens * group; };
  auto head_items = [&](const MaQuery& q) -> std::int64_t {
    const int rows = rows_of(q);
    return rows <= kRowGroup ? 1 : std::int64_t{g.kv_heads} * ((rows + kRowGroup - 1) / kRowGroup);
  };
  std::int64_t base_items = 0;
  for (const MaQuery& q : queries) base_items += q.n_tokens > 0 ? head_items(q) : 0;
  const std::int64_t target = 4 * static_cast<std::int64_t>(threads);
  std::vector<SplitStates> splits(queries.size());
  std::vector<Item> items;
  for (std::size_t qi = 0; qi < queries.size(); ++qi) {
    const MaQuery& q = queries[qi];
    if (q.n_tokens == 0) continue;
    const int n_blocks = static_cast<int>(q.blocks.size());
    int n_splits = 1;
    if (threads > 1 && base_items < target) {
      // NOTE: ranges of ~kSplitBlocks rather than one per thread, so a thread that is
      // descheduled (a shared node) or slowed by a remote NUMA node does not hold up the others.
      const auto want = static_cast<int>((target + base_items - 1) / base_items);
      n_splits = std::max(want, n_blocks / kSplitBlocks);
      n_splits = std::max(1, std::min(n_splits, n_blocks / kMinSplitBlocks));
    }
    SplitStates& ss = splits[qi];
    ss.splits = n_splits;
    if (n_splits > 1) {
      const std::size_t rows = static_cast<std::size_t>(n_splits) * q.n_tokens * params.q_heads;
      ss.o.resize(rows * g.head_dim);
      ss.m.resize(rows);
      ss.l.resize(rows);
    }
    const int rows = rows_of(q);
    const bool all_heads = rows <= kRowGroup;
    for (int h = 0; h < (all_heads ? 1 : g.kv_heads); ++h) {
      for (int r = 0; r < rows; r += kRowGroup) {
        for (int sp = 0; sp < n_splits; ++sp) {
          Item it;
          it.query = static_cast<int>(qi);
          it.head_begin = all_heads ? 0 : h;
          it.head_end = all_heads ? g.kv_heads : h + 1;
          it.row_begin = r;
          it.row_end = std::min(rows, r + kRowGroup);
          it.block_begin = static_cast<int>(std::int64_t{n_blocks} * sp / n_splits);
          it.block_end = static_cast<int>(std::int64_t{n_blocks} * (sp + 1) / n_splits);
          it.split = n_splits > 1 ? sp : -1;
          items.push_back(it);
        }
      }
    }
  }
  attention_parallel_for(static_cast<std::int64_t>(items.size()), threads, [&](std::int64_t i) {
    const Item& it = items[i];
    run_item(pool, params, isa, it, queries[it.query], outputs[it.query], splits[it.query]);
  });

  // Merge the block ranges of split requests.
  for (std::size_t qi = 0; qi < queries.size(); ++qi) {
    const SplitStates& ss = splits[qi];
    if (ss.splits <= 1) continue;
    const std::int64_t rows = static_cast<std::int64_t>(queries[qi].n_tokens) * params.q_heads;
    std::vector<PartialsView> parts;
    for (int sp = 0; sp < ss.splits; ++sp) {
      const std::size_t at = static_cast<std::size_t>(sp) * rows;
      parts.push_back(
          PartialsView{ss.o.data() + at * g.head_dim, ss.m.data() + at, ss.l.data() + at});
    }
    merge_partials(parts, rows, g.head_dim, outputs[qi], params.result);
  }
}

void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                         int head_dim) {
  for (std::int64_t r = 0; r < rows; ++r) {
    merge_state(acc.o + r * head_dim, acc.m + r, acc.l + r, part.o + r * head_dim, part.m[r],
                part.l[r], head_dim);
  }
}

void merge_partials(std::span<const PartialsView> parts, std::int64_t rows, int head_dim,
                    const MaOutput& out, MaResult result) {
  // Row by row: the common max first, then one scale per partition (partition_scale), so each
  // partition costs one exp2; then one pass over the row's columns adds every partition's row,
  // writing the output once.
  const detail::WeightedSumFn weighted_sum = detail::weighted_sum_fn();
  const std::size_t n = parts.size();
  std::vector<const float*> rows_o(n);
  std::vector<float> scales(n);
  for (std::int64_t r = 0; r < rows; ++r) {
    float m = -INFINITY;
    for (const PartialsView& p : parts) m = std::fmax(m, p.m[r]);
    float l = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
      scales[i] = partition_scale(parts[i].m[r], m);
      rows_o[i] = parts[i].o + r * head_dim;
      l += parts[i].l[r] * scales[i];
    }
    float* o = out.o + r * head_dim;
    weighted_sum(o, rows_o.data(), scales.data(), static_cast<int>(n), head_dim);
    if (result == MaResult::kNormalized) {
      normalize_state(o, l, o, head_dim);
    } else {
      out.m[r] = m;
      out.l[r] = l;
    }
  }
}

void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim, float* out) {
  for (std::int64_t r = 0; r < rows; ++r) {
    normalize_state(states.o + r * head_dim, states.l[r], out + r * head_dim, head_dim);
  }
}

}  // namespace infllm::cpu
