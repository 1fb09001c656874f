// cost_model.hpp: how long a step takes on a device, and a message on a link, from profiles
// kept as data (sim/devices/*.json, sim/links/*.json, sim/models/*.json: every figure with its
// source beside it).
//
// One instance's step over T tokens (R of them wanting logits), per model shape and device:
//
//   weights   max(FLOPs of the linear layers / (peak * gemm_efficiency),
//                 weight bytes / (HBM * weight_read_fraction))      (small batches read weights)
//   attention KV bytes each query reads / (HBM * attention_read_fraction)
//             + prefill's QK and PV FLOPs / (peak * gemm_efficiency)
//   overhead  step_overhead_s + layers * layer_overhead_s
//
// With tensor parallelism over `tp` devices of a node, weights, FLOPs and KV reads divide by tp
// and each layer adds two all-reduces of the activations over the node's link. A message on a
// link costs latency + bytes / bandwidth.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace infllm::sim {

struct DeviceProfile {
  std::string name;
  double memory_bytes = 0;
  double bf16_flops = 0;
  double hbm_bytes_per_s = 0;
  double gemm_efficiency = 0;
  double weight_read_fraction = 0;
  double attention_read_fraction = 0;
  double step_overhead_s = 0;
  double layer_overhead_s = 0;
};

struct LinkProfile {
  std::string name;
  double bytes_per_s = 0;
  double latency_s = 0;
  double seconds(double bytes) const { return bytes > 0 ? latency_s + bytes / bytes_per_s : 0; }
};

struct ModelShape {
  std::string name;
  std::int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t intermediate = 0, vocab = 0;
  int weight_bytes = 2;  // per parameter (bf16)
  int kv_bytes = 2;      // per K or V element (bf16)
  int tp = 1;            // devices per instance (tensor parallel, within a node)

  std::int64_t linear_params() const;  // every layer's projections and the LM head
  std::int64_t kv_bytes_per_token() const;
};

// Each loader throws InputError naming the file and the key on a missing, unknown or
// non-positive figure, or a figure without its source.
DeviceProfile load_device(const std::string& path);
LinkProfile load_link(const std::string& path);
ModelShape load_model_shape(const std::string& path);

// One batch item of a step, as the cost model sees it.
struct ItemCost {
  std::int64_t tokens = 0;   // query tokens this step
  std::int64_t context = 0;  // positions attended here (including this step's)
  bool logits = false;       // the step ends with a sampled token
};

class CostModel {
 public:
  CostModel(DeviceProfile device, ModelShape model, LinkProfile node_link, LinkProfile net_link);

  // Seconds of one instance's step over `items`; of a fill step layer, the same / layers.
  double step_seconds(const std::vector<ItemCost>& items) const;
  // Seconds a creditor spends answering push-query over `kv_tokens` positions for `rows` query
  // tokens (all layers).
  double serve_seconds(std::int64_t kv_tokens, std::int64_t rows) const;
  // The rBlock of `block_tokens` tokens.
  std::int64_t block_bytes(int block_tokens) const;
  // rBlocks of `block_tokens` that fit the device memory left after the weights, at
  // `memory_fraction` of the device (as vLLM's gpu_memory_utilization).
  std::int64_t pool_blocks(int block_tokens, double memory_fraction) const;

  const LinkProfile& link(bool same_node) const { return same_node ? node_link_ : net_link_; }
  const ModelShape& model() const { return model_; }
  const DeviceProfile& device() const { return device_; }

 private:
  DeviceProfile device_;
  ModelShape model_;
  LinkProfile node_link_, net_link_;
};

}  // namespace infllm::sim
