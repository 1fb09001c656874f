// tiny_model.hpp: a tiny random Llama-family model and an independent fp64 reference of its
// forward pass, shared by the model tests.
//
// The reference is the textbook computation for one whole sequence at once: dense causal
// attention in double, no blocks, no batching, no chunks, RoPE angles in double.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "model/formats/weights.hpp"

namespace infllm::model::testing {

inline ModelConfig tiny_config(int q_heads, int kv_heads, bool bias, bool tied) {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = q_heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.intermediate_size = 48;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1000.0;
  c.tie_word_embeddings = tied;
  c.attention_bias = bias;
  return c;
}

inline Tensor random_tensor(std::mt19937& rng, std::vector<std::int64_t> shape, float scale,
                            float offset = 0.0f) {
  Tensor t;
  t.shape = shape;
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::normal_distribution<float> dist(0.0f, 1.0f);
  t.data.resize(static_cast<std::size_t>(n));
  for (auto& v : t.data) v = offset + scale * dist(rng);
  return t;
}

inline Weights random_weights(const ModelConfig& c, unsigned seed) {
  std::mt19937 rng(seed);
  const auto H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), F = c.intermediate_size;
  const float s = 1.0f / std::sqrt(float(H));
  Weights w;
  w.embed = random_tensor(rng, {c.vocab_size, H}, 1.0f);
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights L;
    L.attn_norm = random_tensor(rng, {H}, 0.1f, 1.0f);
    L.q = random_tensor(rng, {Q, H}, 2 * s);
    L.k = random_tensor(rng, {KV, H}, 2 * s);
    L.v = random_tensor(rng, {KV, H}, s);
    L.o = random_tensor(rng, {H, Q}, s);
    if (c.attention_bias) {
      L.q_bias = random_tensor(rng, {Q}, 0.1f);
      L.k_bias = random_tensor(rng, {KV}, 0.1f);
      L.v_bias = random_tensor(rng, {KV}, 0.1f);
    }
    L.ffn_norm = random_tensor(rng, {H}, 0.1f, 1.0f);
    L.gate = random_tensor(rng, {F, H}, s);
    L.up = random_tensor(rng, {F, H}, s);
    L.down = random_tensor(rng, {H, F}, 1.0f / std::sqrt(float(F)));
    w.layers.push_back(std::move(L));
  }
  w.final_norm = random_tensor(rng, {H}, 0.1f, 1.0f);
  if (!c.tie_word_embeddings) w.lm_head = random_tensor(rng, {c.vocab_size, H}, s);
  return w;
}

using Mat = std::vector<double>;

// y (n, out) = x (n, in) . W^T
inline Mat ref_linear(const Mat& x, const Tensor& w, std::size_t n, std::size_t in,
                      std::size_t out) {
  Mat y(n * out, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t o = 0; o < out; ++o) {
      double acc = 0.0;
      for (std::size_t j = 0; j < in; ++j) acc += x[i * in + j] * double(w.data[o * in + j]);
      y[i * out + o] = acc;
    }
  return y;
}

inline Mat ref_rmsnorm(const Mat& x, const Tensor& g, std::size_t n, std::size_t d, double eps) {
  Mat y(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    double ss = 0.0;
    for (std::size_t j = 0; j < d; ++j) ss += x[i * d + j] * x[i * d + j];
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps);
    for (std::size_t j = 0; j < d; ++j) y[i * d + j] = x[i * d + j] * inv * double(g.data[j]);
  }
  return y;
}

inline void ref_rope(Mat& x, std::size_t n, int heads, int hd, double theta) {
  for (std::size_t p = 0; p < n; ++p)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double angle = double(p) * std::pow(theta, -2.0 * i / hd);
        double& a = x[(p * heads + h) * hd + i];
        double& b = x[(p * heads + h) * hd + i + hd / 2];
        const double a0 = a, b0 = b;
        a = a0 * std::cos(angle) - b0 * std::sin(angle);
        b = b0 * std::cos(angle) + a0 * std::sin(angle);
      }
}

// Logits (n, vocab) of every position of `tokens`, all in double.
inline Mat reference_logits(const ModelConfig& c, const Weights& w,
                            const std::vector<std::int32_t>& tokens) {
  const std::size_t n = tokens.size(), H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim();
  const std::size_t F = c.intermediate_size, V = c.vocab_size;
  const int qh = c.num_heads, kvh = c.num_kv_heads, hd = c.head_dim;
  Mat x(n * H);
  for (std::size_t p = 0; p < n; ++p)
    for (std::size_t j = 0; j < H; ++j) x[p * H + j] = w.embed.data[tokens[p] * H + j];
  for (const auto& L : w.layers) {
    Mat h = ref_rmsnorm(x, L.attn_norm, n, H, c.rms_norm_eps);
    Mat q = ref_linear(h, L.q, n, H, Q), k = ref_linear(h, L.k, n, H, KV),
        v = ref_linear(h, L.v, n, H, KV);
    if (c.attention_bias)
      for (std::size_t p = 0; p < n; ++p) {
        for (std::size_t j = 0; j < Q; ++j) q[p * Q + j] += L.q_bias.data[j];
        for (std::size_t j = 0; j < KV; ++j) {
          k[p * KV + j] += L.k_bias.data[j];
          v[p * KV + j] += L.v_bias.data[j];
        }
      }
    ref_rope(q, n, qh, hd, c.rope_theta);
    ref_rope(k, n, kvh, hd, c.rope_theta);
    Mat a(n * Q, 0.0);
    for (std::size_t p = 0; p < n; ++p)
      for (int head = 0; head < qh; ++head) {
        const int kv = head / (qh / kvh);
        std::vector<double> s(p + 1);
        double mx = -INFINITY;
        for (std::size_t j = 0; j <= p; ++j) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d)
            dot += q[(p * qh + head) * hd + d] * k[(j * kvh + kv) * hd + d];
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double sum = 0.0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (std::size_t j = 0; j <= p; ++j)
          for (int d = 0; d < hd; ++d)
            a[(p * qh + head) * hd + d] += s[j] / sum * v[(j * kvh + kv) * hd + d];
      }
    Mat o = ref_linear(a, L.o, n, Q, H);
    for (std::size_t i = 0; i < n * H; ++i) x[i] += o[i];
    h = ref_rmsnorm(x, L.ffn_norm, n, H, c.rms_norm_eps);
    Mat g = ref_linear(h, L.gate, n, H, F), u = ref_linear(h, L.up, n, H, F);
    for (std::size_t i = 0; i < n * F; ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
    Mat dn = ref_linear(g, L.down, n, F, H);
    for (std::size_t i = 0; i < n * H; ++i) x[i] += dn[i];
  }
  Mat h = ref_rmsnorm(x, w.final_norm, n, H, c.rms_norm_eps);
  return ref_linear(h, w.output(), n, H, V);
}

// max |a - b| / max |b| over one row of logits.
inline double rel_error(const float* got, const double* want, std::size_t n) {
  double diff = 0.0, mag = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_FALSE(std::isnan(got[i]));
    diff = std::max(diff, std::abs(double(got[i]) - want[i]));
    mag = std::max(mag, std::abs(want[i]));
  }
  return diff / mag;
}

inline std::vector<std::int32_t> random_tokens(std::mt19937& rng, std::size_t n, int vocab) {
  std::vector<std::int32_t> t(n);
  for (auto& v : t) v = static_cast<std::int32_t>(rng() % vocab);
  return t;
}

}  // namespace infllm::model::testing
