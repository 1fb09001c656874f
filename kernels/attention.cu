// attention.cu: the kernels that read and write the KV pool (see attention.cuh): storing new K
// and V, micro-attention over rBlocks with its split merge, and the partial-state kernels.
#include "kernels/attention.cuh"

#include "core/attention_state.hpp"
#include "kernels/elem_access.cuh"

namespace infllm::kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kAttnRows / kWarps;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ int min_int(int a, int b) { return a < b ? a : b; }

__global__ void store_kv_kernel(std::byte* base, KvLayout layout, const KvDest* dests,
                                std::size_t rows, const float* k, const float* v) {
  const std::size_t hd = static_cast<std::size_t>(layout.head_dim);
  const std::size_t per_row = static_cast<std::size_t>(layout.kv_heads) * hd;
  for (std::size_t e = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; e < rows * per_row;
       e += std::size_t{gridDim.x} * blockDim.x) {
    const std::size_t r = e / per_row, h = (e / hd) % layout.kv_heads, d = e % hd;
    const KvDest dest = dests[r];
    std::byte* head = base + static_cast<std::size_t>(dest.slot) * layout.slot_bytes +
                      layout.layer_k_offset + h * layout.head_bytes;
    const std::size_t i = static_cast<std::size_t>(dest.token) * hd + d;
    store_elem(head, i, layout.type, k[e]);
    store_elem(head + layout.v_offset, i, layout.type, v[e]);
  }
}

// Keys of K and V in shared memory at a time: 16, or 8 for head dims over 128 (shared memory
// under 48 KiB).
template <int kPerLane>
constexpr int keys_per_tile() {
  return kPerLane == 8 ? 8 : 16;
}

template <int kPerLane>
std::size_t attention_shared_bytes(int head_dim) {
  const int keys = keys_per_tile<kPerLane>();
  return sizeof(float) * (static_cast<std::size_t>(2 * keys + kAttnRows) * head_dim +
                          static_cast<std::size_t>(kWarps) * keys);
}

// One item: up to kAttnRows query rows of one kv head against a run of blocks. Warp w owns rows
// w, w + kWarps, ...; lane j holds dims j, j + 32, ... of each row's o (kPerLane of them). K and
// V come through shared memory a tile of keys at a time, read once for all rows. Per row and
// tile, lane t scores key t against the whole query (read from shared memory with a skew, so
// the lanes of a warp hit distinct banks), the warp reduces the tile's max and sum, and the
// weights go through shared memory to the lanes that own o's dims.
template <int kPerLane>
__global__ void micro_attention_kernel(AttnParams p, const AttnRequest* requests,
                                       const AttnBlock* blocks, const AttnItem* items,
                                       float* scratch, int partials) {
  constexpr int kKeys = keys_per_tile<kPerLane>();
  INFLLM_DYNAMIC_SHARED(float, smem);
  const KvLayout& lay = p.pool.layout;
  const int hd = lay.head_dim;
  float* ks = smem;                 // (kKeys, head_dim)
  float* vs = ks + kKeys * hd;      // (kKeys, head_dim)
  float* qs = vs + kKeys * hd;      // (kAttnRows, head_dim) queries, scaled to log2 units
  float* ps = qs + kAttnRows * hd;  // (kWarps, kKeys) one tile's weights per warp
  const AttnItem item = items[blockIdx.x];
  const AttnRequest req = requests[item.request];
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);

  for (int e = static_cast<int>(threadIdx.x); e < kAttnRows * hd;
       e += static_cast<int>(blockDim.x)) {
    const int r = e / hd, d = e % hd;
    float v = 0.0f;
    if (r < item.rows) {
      const int row = item.row_begin + r;
      const int token = row / p.group, head = item.kv_head * p.group + row % p.group;
      v = req.q[(static_cast<std::size_t>(token) * p.q_heads + head) * hd + d] * p.score_scale;
    }
    qs[e] = v;
  }

  float o[kRowsPerWarp][kPerLane];
  float m[kRowsPerWarp], l[kRowsPerWarp];
  std::int64_t pos[kRowsPerWarp];
  bool valid[kRowsPerWarp];
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + i * kWarps;
    valid[i] = r < item.rows;
    m[i] = -INFINITY;
    l[i] = 0.0f;
    for (int j = 0; j < kPerLane; ++j) o[i][j] = 0.0f;
    pos[i] = req.first_pos + (valid[i] ? (item.row_begin + r) / p.group : 0);
  }

  const std::size_t k_head =
      lay.layer_k_offset + static_cast<std::size_t>(item.kv_head) * lay.head_bytes;
  float* pw = ps + warp * kKeys;
  for (int b = item.block_begin; b < item.block_end; ++b) {
    const AttnBlock blk = blocks[b];
    const std::byte* kb =
        p.pool.base + static_cast<std::size_t>(blk.slot) * lay.slot_bytes + k_head;
    const std::byte* vb = kb + lay.v_offset;
    for (int s = 0; s < blk.tokens; s += kKeys) {
      const int n = min_int(kKeys, blk.tokens - s);
      __syncthreads();  // the previous tile's readers (and the query rows' writers) are done
      for (int e = static_cast<int>(threadIdx.x); e < n * hd; e += static_cast<int>(blockDim.x)) {
        ks[e] = load_elem(kb, static_cast<std::size_t>(s) * hd + e, lay.type);
        vs[e] = load_elem(vb, static_cast<std::size_t>(s) * hd + e, lay.type);
      }
      __syncthreads();
      for (int i = 0; i < kRowsPerWarp; ++i) {
        if (!valid[i]) continue;  // the same for every lane of the warp
        // Lane t's score of key t; -inf for a key past the tile or after the query (causal,
        // by absolute position).
        float x = -INFINITY;
        if (lane < n && blk.first_pos + s + lane <= pos[i]) {
          const float* qr = qs + (warp + i * kWarps) * hd;
          const float* kr = ks + lane * hd;
          float dot = 0.0f;
          int d = lane % hd;
          for (int c = 0; c < hd; ++c) {
            dot += qr[d] * kr[d];
            if (++d == hd) d = 0;
          }
          x = dot;
        }
        float tile_max = x;
        for (int offset = 16; offset > 0; offset /= 2) {
          tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, offset));
        }
        const float m_new = fmaxf(m[i], tile_max);
        if (m_new == -INFINITY) continue;  // no key visible yet (the whole warp agrees)
        // Online softmax in base 2: what was summed is rescaled to the new max (0 from -inf).
        const float rescale = exp2f(m[i] - m_new);
        const float w = exp2f(x - m_new);  // 0 for a masked key
        float sum = w;
        for (int offset = 16; offset > 0; offset /= 2) {
          sum += __shfl_xor_sync(kFullMask, sum, offset);
        }
        l[i] = l[i] * rescale + sum;
        m[i] = m_new;
        if (lane < kKeys) pw[lane] = w;
        __syncwarp();
        for (int j = 0; j < kPerLane; ++j) {
          const int d = lane + 32 * j;
          float acc = o[i][j] * rescale;
          if (d < hd) {
            for (int t = 0; t < n; ++t) acc += pw[t] * vs[t * hd + d];
          }
          o[i][j] = acc;
        }
        __syncwarp();  // the weights are read before the next row writes its own
      }
    }
  }

  const std::size_t slots = static_cast<std::size_t>(partials) * kAttnRows;
  for (int i = 0; i < kRowsPerWarp; ++i) {
    if (!valid[i]) continue;
    const std::size_t row = static_cast<std::size_t>(item.partial) * kAttnRows + warp + i * kWarps;
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) scratch[row * hd + d] = o[i][j];
    }
    if (lane == 0) {
      scratch[slots * hd + row] = m[i];
      scratch[slots * (hd + 1) + row] = l[i];
    }
  }
}

// Merges each row's splits into the request's output (core/attention_state.hpp's math).
__global__ void combine_kernel(AttnParams p, const AttnRequest* requests,
                               const AttnCombine* combines, const float* scratch, int partials) {
  const AttnCombine c = combines[blockIdx.x];
  const AttnRequest req = requests[c.request];
  const int hd = p.pool.layout.head_dim;
  const std::size_t slots = static_cast<std::size_t>(partials) * kAttnRows;
  const float* so = scratch;
  const float* sm = scratch + slots * hd;
  const float* sl = scratch + slots * (hd + 1);
  for (int e = static_cast<int>(threadIdx.x); e < c.rows * hd; e += static_cast<int>(blockDim.x)) {
    const int r = e / hd, d = e % hd;
    float acc_m = -INFINITY, acc_l = 0.0f;
    for (int s = 0; s < c.splits; ++s) {
      const std::size_t idx = static_cast<std::size_t>(c.first_partial + s) * kAttnRows + r;
      const MergeScales sc = merge_scales(acc_m, sm[idx]);
      acc_l = acc_l * sc.scale_a + sl[idx] * sc.scale_b;
      acc_m = sc.m;
    }
    float acc_o = 0.0f;
    for (int s = 0; s < c.splits; ++s) {
      const std::size_t idx = static_cast<std::size_t>(c.first_partial + s) * kAttnRows + r;
      acc_o += so[idx * hd + d] * partition_scale(sm[idx], acc_m);
    }
    const int row = c.row_begin + r;
    const int token = row / p.group, head = c.kv_head * p.group + row % p.group;
    const std::size_t out = static_cast<std::size_t>(token) * p.q_heads + head;
    if (p.normalized) {
      req.o[out * hd + d] = acc_l > 0.0f ? acc_o / acc_l : 0.0f;
    } else {
      req.o[out * hd + d] = acc_o;
      if (d == 0) {
        req.m[out] = acc_m;
        req.l[out] = acc_l;
      }
    }
  }
}

// One block per row: every thread reads the row's two maxima before thread 0 replaces them.
__global__ void merge_partials_kernel(float* acc_o, float* acc_m, float* acc_l, const float* part_o,
                                      const float* part_m, const float* part_l, int head_dim) {
  const std::size_t row = blockIdx.x;
  const MergeScales sc = merge_scales(acc_m[row], part_m[row]);
  for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
    const std::size_t i = row * head_dim + d;
    acc_o[i] = acc_o[i] * sc.scale_a + part_o[i] * sc.scale_b;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    acc_l[row] = acc_l[row] * sc.scale_a + part_l[row] * sc.scale_b;
    acc_m[row] = sc.m;
  }
}

__global__ void normalize_partials_kernel(const float* o, const float* l, std::size_t rows,
                                          int head_dim, float* out) {
  for (std::size_t e = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; e < rows * head_dim;
       e += std::size_t{gridDim.x} * blockDim.x) {
    const float sum = l[e / head_dim];
    out[e] = sum > 0.0f ? o[e] / sum : 0.0f;
  }
}

unsigned grid_for(std::size_t n, unsigned threads) {
  const std::size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(
      blocks < 1 ? 1 : (blocks > INFLLM_GRID_STRIDE_BLOCKS ? INFLLM_GRID_STRIDE_BLOCKS : blocks));
}

}  // namespace

AttnPlan plan_attention(const std::vector<AttnPlanRequest>& requests, int kv_heads, int group,
                        int blocks_per_split) {
  AttnPlan plan;
  const int per_split = blocks_per_split < 1 ? 1 : blocks_per_split;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const AttnPlanRequest& r = requests[i];
    const int rows = r.n_tokens * group;
    const int splits = r.blocks <= per_split ? 1 : (r.blocks + per_split - 1) / per_split;
    for (int h = 0; h < kv_heads; ++h) {
      for (int rb = 0; rb < rows; rb += kAttnRows) {
        const int n = rows - rb < kAttnRows ? rows - rb : kAttnRows;
        plan.combines.push_back(
            AttnCombine{static_cast<std::int32_t>(i), h, rb, n, plan.partials, splits});
        for (int s = 0; s < splits; ++s) {
          const int begin = r.block_begin + s * per_split;
          const int end =
              r.block_begin + (r.blocks < (s + 1) * per_split ? r.blocks : (s + 1) * per_split);
          plan.items.push_back(
              AttnItem{static_cast<std::int32_t>(i), h, rb, n, begin, end, plan.partials++});
        }
      }
    }
  }
  return plan;
}

std::size_t attention_scratch_floats(const AttnPlan& plan, int head_dim) {
  return static_cast<std::size_t>(plan.partials) * kAttnRows * (head_dim + 2);
}

cudaError_t launch_store_kv(std::byte* base, const KvLayout& layout, const KvDest* dests,
                            std::size_t rows, const float* k, const float* v, cudaStream_t stream) {
  const std::size_t n = rows * layout.kv_heads * layout.head_dim;
  if (n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(n, 256), 256, 0, stream, store_kv_kernel)(base, layout, dests, rows, k, v);
  return cudaGetLastError();
}

cudaError_t launch_attention(const AttnParams& params, const AttnRequest* requests,
                             const AttnBlock* blocks, const AttnItem* items, int n_items,
                             const AttnCombine* combines, int n_combines, float* scratch,
                             int partials, cudaStream_t stream) {
  if (n_items == 0) return cudaSuccess;
  const int hd = params.pool.layout.head_dim;
  if (hd <= 0 || hd > kAttnMaxHeadDim) return cudaErrorInvalidValue;
  if (hd <= 32) {
    INFLLM_LAUNCH(n_items, kThreads, attention_shared_bytes<1>(hd), stream,
                  micro_attention_kernel<1>)
    (params, requests, blocks, items, scratch, partials);
  } else if (hd <= 64) {
    INFLLM_LAUNCH(n_items, kThreads, attention_shared_bytes<2>(hd), stream,
                  micro_attention_kernel<2>)
    (params, requests, blocks, items, scratch, partials);
  } else if (hd <= 128) {
    INFLLM_LAUNCH(n_items, kThreads, attention_shared_bytes<4>(hd), stream,
                  micro_attention_kernel<4>)
    (params, requests, blocks, items, scratch, partials);
  } else {
    INFLLM_LAUNCH(n_items, kThreads, attention_shared_bytes<8>(hd), stream,
                  micro_attention_kernel<8>)
    (params, requests, blocks, items, scratch, partials);
  }
  if (const cudaError_t rc = cudaGetLastError(); rc != cudaSuccess) return rc;
  INFLLM_LAUNCH(n_combines, kThreads, 0, stream, combine_kernel)
  (params, requests, combines, scratch, partials);
  return cudaGetLastError();
}

cudaError_t launch_merge_partials_into(float* acc_o, float* acc_m, float* acc_l,
                                       const float* part_o, const float* part_m,
                                       const float* part_l, std::int64_t rows, int head_dim,
                                       cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  INFLLM_LAUNCH(static_cast<unsigned>(rows), 64, 0, stream, merge_partials_kernel)
  (acc_o, acc_m, acc_l, part_o, part_m, part_l, head_dim);
  return cudaGetLastError();
}

cudaError_t launch_normalize_partials(const float* o, const float* l, std::int64_t rows,
                                      int head_dim, float* out, cudaStream_t stream) {
  const std::size_t n = static_cast<std::size_t>(rows) * head_dim;
  if (n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(n, 256), 256, 0, stream, normalize_partials_kernel)
  (o, l, static_cast<std::size_t>(rows), head_dim, out);
  return cudaGetLastError();
}

}  // namespace infllm::kernels
