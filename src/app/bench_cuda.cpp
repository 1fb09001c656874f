// bench_cuda.cpp: see bench_cuda.hpp. Tables as docs/benchmarks.md records them:
//
//   attention  decode micro-attention (one query token, 32 query heads over 8 KV heads of 128,
//              Llama-3-8B's layer shape) over a bf16 KV pool in device memory at 4K .. 1M
//              tokens: GB/s of KV read, against the device-to-device copy bandwidth (bytes read
//              plus written). Goal: >= 0.8 at >= 64K tokens.
//   forward    SmolLM2-135M's and a 1B model's shapes with random bf16 weights: prefill tok/s of
//              one 2048-token chunk, with its GEMM FLOP rate against cuBLAS's bf16 rate for the
//              model's largest GEMM (goal >= 0.6), and decode tok/s at batch 1, 16 and 64 over
//              1024-token contexts, with weight bytes per token x tok/s at batch 1 against the
//              copy bandwidth (goal >= 0.6).
//
// In the test build over the CUDA-on-CPU layer (infllm-cuda-on-cpu) the same code runs at the
// smallest sizes only: a check that it runs, not a measurement.
#include "app/bench_cuda.hpp"

#include <cstdio>

#if defined(INFLLM_HAVE_CUDA_BACKEND)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/gemm.hpp"
#include "model/forward/forward.hpp"
#if !defined(INFLLM_CUDA_ON_CPU)
#include "backend/cuda/cuda_device.hpp"
#endif
#endif

namespace infllm::app {

#if !defined(INFLLM_HAVE_CUDA_BACKEND)

namespace {
int no_cuda(const char* name) {
  std::fprintf(stderr,
               "infllm bench %s: --backend cuda: this build has no CUDA backend (configure with "
               "-DINFLLM_CUDA=ON; docs/building.md)\n",
               name);
  return 2;
}
}  // namespace

int run_cuda_attention(const BenchOptions&) { return no_cuda("attention"); }
int run_cuda_forward(const BenchOptions&) { return no_cuda("forward"); }

#else

namespace {

using model::ModelConfig;

#if defined(INFLLM_CUDA_ON_CPU)
constexpr bool kOnCpu = true;
#else
constexpr bool kOnCpu = false;
#endif

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void sync() { INFLLM_CUDA_CHECK(cudaDeviceSynchronize()); }

// Seconds per call of fn: warm-ups, then repetitions until `min_s` has passed (at least 3).
template <class Fn>
double seconds_per_call(Fn fn, double min_s) {
  fn();
  fn();
  sync();
  int reps = 0;
  const double t0 = now_s();
  double t = 0.0;
  do {
    fn();
    sync();
    ++reps;
    t = now_s() - t0;
  } while (reps < 3 || t < min_s);
  return t / reps;
}

void print_device() {
#if defined(INFLLM_CUDA_ON_CPU)
  std::printf(
      "device: the CUDA-on-CPU layer (a check that the benchmark runs; no timing here "
      "means anything)\n");
#else
  std::printf("device: %s\n", cuda::describe_device(0).c_str());
#endif
}

// Device-to-device copy bandwidth, bytes read plus written per second.
double copy_bandwidth(std::size_t bytes) {
  void* a = nullptr;
  void* b = nullptr;
  INFLLM_CUDA_CHECK(cudaMalloc(&a, bytes));
  INFLLM_CUDA_CHECK(cudaMalloc(&b, bytes));
  INFLLM_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double s = seconds_per_call(
      [&] { INFLLM_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 0.2);
  INFLLM_CUDA_CHECK(cudaFree(a));
  INFLLM_CUDA_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / s;
}

std::vector<float> random_floats(std::size_t n, unsigned seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace

int run_cuda_attention(const BenchOptions& options) {
  print_device();
  const double copy = copy_bandwidth(kOnCpu ? (1u << 20) : (std::size_t{1} << 30));
  std::printf("copy bandwidth (device to device, read + written): %.1f GB/s\n\n", copy / 1e9);
  cuda::CudaBackend backend(0);
  const BlockGeometry g{16, 1, 8, 128, KvDtype::kBF16};
  const int q_heads = 32;
  std::vector<std::int64_t> contexts = {4096, 16384, 65536, 262144};
  if (options.full) contexts.push_back(1048576);
  if (kOnCpu) contexts = {256, 1024};
  const std::vector<float> q = random_floats(static_cast<std::size_t>(q_heads) * 128, 1, 1.0f);
  const auto d_q = backend.allocate(q.size() * sizeof(float), MemoryUse::kWorkspace);
  backend.upload(d_q->data(), q.data(), q.size() * sizeof(float));
  const auto d_o = backend.allocate(q.size() * sizeof(float), MemoryUse::kWorkspace);
  std::printf("%10s %10s %12s %10s %14s\n", "tokens", "KV MiB", "us/call", "KV GB/s", "of copy BW");
  bool goal = true;
  for (const std::int64_t ctx : contexts) {
    const auto slots = static_cast<std::int32_t>(ctx / g.block_tokens);
    const auto pool = backend.allocate(g.block_bytes() * slots, MemoryUse::kKvPool);
    // 0x3c3c as bf16 is about 0.0115: finite keys and values, the same work as any.
    INFLLM_CUDA_CHECK(cudaMemset(pool->data(), 0x3c, g.block_bytes() * slots));
    std::vector<KvBlock> blocks(static_cast<std::size_t>(slots));
    for (std::int32_t b = 0; b < slots; ++b) {
      blocks[static_cast<std::size_t>(b)] = KvBlock{SlotId{b}, std::int64_t{b} * 16, 16};
    }
    const KvPool view{pool->data(), g.block_bytes(), slots, g};
    MaParams params;
    params.q_heads = q_heads;
    params.scale = 1.0f / std::sqrt(128.0f);
    params.result = MaResult::kNormalized;
    const MaQuery query{reinterpret_cast<const float*>(d_q->data()), 1, ctx - 1, blocks};
    const MaOutput out{reinterpret_cast<float*>(d_o->data()), nullptr, nullptr};
    const double s = seconds_per_call(
        [&] { backend.attention(view, params, std::span(&query, 1), std::span(&out, 1)); },
        kOnCpu ? 0.0 : 0.2);
    const double kv_bytes = static_cast<double>(g.block_bytes()) * slots;
    const double ratio = kv_bytes / s / copy;
    if (ctx >= 65536 && ratio < 0.8) goal = false;
    std::printf("%10lld %10.1f %12.1f %10.1f %14.2f\n", static_cast<long long>(ctx),
                kv_bytes / 1048576.0, s * 1e6, kv_bytes / s / 1e9, ratio);
  }
  std::printf("\ngoal: decode micro-attention >= 0.8 of the copy bandwidth at >= 64K tokens: %s\n",
              kOnCpu ? "not measured (CUDA-on-CPU)" : (goal ? "OK" : "BELOW"));
  return 0;
}

namespace {

// A model of `c`'s shape with random weights (the speed of a forward pass does not depend on
// the values): normal with the scale of a trained model's, gains 1.
model::Weights random_weights(const ModelConfig& c) {
  unsigned seed = 1;
  auto matrix = [&](std::int64_t rows, std::int64_t cols) {
    model::Tensor t;
    t.shape = {rows, cols};
    // A cheap generator: a 1B model is 1.2e9 values, which std::normal_distribution takes a
    // minute to draw. Uniform in [-0.03, 0.03), the spread of a trained model's weights.
    t.data.resize(static_cast<std::size_t>(rows * cols));
    std::uint64_t x = 0x9e3779b97f4a7c15ull * seed++;
    for (float& v : t.data) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v = (static_cast<float>(x >> 40) / 16777216.0f - 0.5f) * 0.06f;
    }
    return t;
  };
  auto gain = [](std::int64_t n) {
    model::Tensor t;
    t.shape = {n};
    t.data.assign(static_cast<std::size_t>(n), 1.0f);
    return t;
  };
  const std::int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.intermediate_size;
  model::Weights w;
  w.embed = matrix(c.vocab_size, H);
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    model::LayerWeights lw;
    lw.attn_norm = gain(H);
    lw.q = matrix(Q, H);
    lw.k = matrix(KV, H);
    lw.v = matrix(KV, H);
    lw.o = matrix(H, Q);
    lw.ffn_norm = gain(H);
    lw.gate = matrix(F, H);
    lw.up = matrix(F, H);
    lw.down = matrix(H, F);
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = gain(H);
  if (!c.tie_word_embeddings) w.lm_head = matrix(c.vocab_size, H);
  return w;
}

struct Shape {
  const char* name;
  ModelConfig config;
};

Shape shape(const char* name, std::int64_t hidden, std::int64_t layers, std::int64_t heads,
            std::int64_t kv_heads, std::int64_t head_dim, std::int64_t ffn, std::int64_t vocab,
            bool tied) {
  ModelConfig c;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.intermediate_size = ffn;
  c.vocab_size = vocab;
  c.tie_word_embeddings = tied;
  c.max_position_embeddings = 1 << 20;
  c.rope_theta = 100000.0;
  c.rms_norm_eps = 1e-5;
  return Shape{name, c};
}

struct Sequences {
  std::unique_ptr<BackendMemory> pool;
  KvStore store;
  std::vector<std::vector<SlotId> > tables;
};

Sequences sequences(Backend& backend, const BlockGeometry& g, int seqs, std::int64_t tokens) {
  Sequences s;
  const std::int64_t per = (tokens + g.block_tokens - 1) / g.block_tokens;
  const auto slots = static_cast<std::int32_t>(per * seqs);
  s.pool = backend.allocate(g.block_bytes() * slots, MemoryUse::kKvPool);
  s.store = KvStore{s.pool->data(), g.block_bytes(), slots, g};
  for (int q = 0; q < seqs; ++q) {
    std::vector<SlotId> t;
    for (std::int64_t b = 0; b < per; ++b)
      t.push_back(SlotId{static_cast<std::int32_t>(q * per + b)});
    s.tables.push_back(std::move(t));
  }
  return s;
}

}  // namespace

int run_cuda_forward(const BenchOptions& options) {
  print_device();
  const double copy = copy_bandwidth(kOnCpu ? (1u << 20) : (std::size_t{1} << 30));
  std::printf("copy bandwidth (device to device, read + written): %.1f GB/s\n", copy / 1e9);
  std::vector<Shape> shapes = {shape("smollm2-135m", 576, 30, 9, 3, 64, 1536, 49152, true)};
  if (options.full || !kOnCpu)
    shapes.push_back(shape("1b", 2048, 16, 32, 8, 64, 8192, 8192, false));
  if (kOnCpu) shapes = {shape("micro", 128, 2, 4, 2, 32, 256, 512, true)};
  const std::int64_t prefill = kOnCpu ? 32 : 2048, context = kOnCpu ? 16 : 1024;
  const std::vector<int> batches = kOnCpu ? std::vector<int>{1, 2} : std::vector<int>{1, 16, 64};
  const int decode_steps = kOnCpu ? 2 : 16;
  bool goals = true;
  for (const Shape& sh : shapes) {
    const ModelConfig& c = sh.config;
    const model::Weights w = random_weights(c);
    cuda::CudaBackend backend(0);
    model::Forward forward(c, w, backend);
    const BlockGeometry g = forward.geometry(16, KvDtype::kBF16);
    // Matmul parameters per token (every linear layer and the LM head) and their bf16 bytes.
    double params = static_cast<double>(c.vocab_size) * c.hidden_size;
    for (const auto& l : w.layers) {
      for (const model::Tensor* t : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) {
        params += static_cast<double>(t->numel());
      }
    }
    // cuBLAS's own bf16 rate on the model's largest GEMM at the prefill's rows.
    double cublas_flops = 0.0;
    {
      const auto m = static_cast<int>(prefill), n = static_cast<int>(c.intermediate_size),
                 k = static_cast<int>(c.hidden_size);
      const auto a = backend.allocate(static_cast<std::size_t>(n) * k * 2, MemoryUse::kWorkspace);
      const auto b = backend.allocate(static_cast<std::size_t>(m) * k * 2, MemoryUse::kWorkspace);
      const auto y = backend.allocate(static_cast<std::size_t>(m) * n * 4, MemoryUse::kWorkspace);
      INFLLM_CUDA_CHECK(cudaMemset(a->data(), 0x3c, static_cast<std::size_t>(n) * k * 2));
      INFLLM_CUDA_CHECK(cudaMemset(b->data(), 0x3c, static_cast<std::size_t>(m) * k * 2));
      cuda::Blas blas(nullptr);
      const double s = seconds_per_call(
          [&] {
            blas.gemm(true, false, n, m, k, 1.0f, a->data(), k, b->data(), k, cuda::GemmType::kBF16,
                      0.0f, reinterpret_cast<float*>(y->data()), n);
          },
          kOnCpu ? 0.0 : 0.2);
      cublas_flops = 2.0 * m * n * k / s;
    }
    std::printf(
        "\n%s: %.1fM matmul parameters (bf16), cuBLAS bf16 GEMM (%lld x %lld x %lld): %.1f "
        "TFLOP/s\n",
        sh.name, params / 1e6, static_cast<long long>(prefill),
        static_cast<long long>(c.intermediate_size), static_cast<long long>(c.hidden_size),
        cublas_flops / 1e12);
    std::printf("%-22s %8s %12s %12s %16s\n", "phase", "batch", "tok/s", "ms/step", "ratio");
    // Prefill: one chunk of `prefill` tokens into an empty sequence.
    {
      Sequences s = sequences(backend, g, 1, prefill);
      std::vector<std::int32_t> tokens(static_cast<std::size_t>(prefill));
      for (std::size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = static_cast<std::int32_t>(3 + i % 100);
      const model::StepSequence seq{tokens, 0, s.tables[0], true};
      const double t =
          seconds_per_call([&] { forward.step(std::span(&seq, 1), s.store); }, kOnCpu ? 0.0 : 0.5);
      const double share = 2.0 * params * static_cast<double>(prefill) / t / cublas_flops;
      if (!kOnCpu && share < 0.6) goals = false;
      std::printf("%-22s %8d %12.0f %12.2f %9.2f of cuBLAS\n", "prefill", 1,
                  static_cast<double>(prefill) / t, t * 1e3, share);
    }
    // Decode: `batch` sequences of `context` tokens, each step one token of every one.
    for (const int batch : batches) {
      Sequences s = sequences(backend, g, batch, context + decode_steps + 4);
      std::vector<std::int32_t> prompt(static_cast<std::size_t>(context));
      for (std::size_t i = 0; i < prompt.size(); ++i)
        prompt[i] = static_cast<std::int32_t>(5 + i % 90);
      for (int q = 0; q < batch; ++q) {
        const model::StepSequence seq{prompt, 0, s.tables[static_cast<std::size_t>(q)], false};
        forward.step(std::span(&seq, 1), s.store);
      }
      std::vector<std::int32_t> next(static_cast<std::size_t>(batch), 7);
      std::int64_t pos = context;
      const double t = seconds_per_call(
          [&] {
            std::vector<model::StepSequence> steps;
            for (int q = 0; q < batch; ++q) {
              steps.push_back(model::StepSequence{std::span(&next[static_cast<std::size_t>(q)], 1),
                                                  pos, s.tables[static_cast<std::size_t>(q)],
                                                  true});
            }
            forward.step(steps, s.store);
            // The same position again: every step's work is the same, and the pool never grows.
          },
          kOnCpu ? 0.0 : 0.5);
      const double tok_s = batch / t;
      if (batch == 1) {
        const double share = 2.0 * params * tok_s / copy;
        if (!kOnCpu && share < 0.6) goals = false;
        std::printf("%-22s %8d %12.0f %12.2f %9.2f of copy BW (weight bytes x tok/s)\n", "decode",
                    batch, tok_s, t * 1e3, share);
      } else {
        std::printf("%-22s %8d %12.0f %12.2f\n", "decode", batch, tok_s, t * 1e3);
      }
      (void)pos;
    }
  }
  std::printf(
      "\ngoals: prefill GEMM share >= 0.6 of cuBLAS, batch-1 decode >= 0.6 of copy "
      "bandwidth: %s\n",
      kOnCpu ? "not measured (CUDA-on-CPU)" : (goals ? "OK" : "BELOW"));
  return 0;
}

#endif

}  // namespace infllm::app
