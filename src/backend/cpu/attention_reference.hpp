// attention_reference.hpp: the straightforward MA kernel (internal; MaKernel::kReference).
#pragma once

#include "backend/cpu/attention.hpp"

namespace infllm::cpu::detail {

// MA of one request, one thread, fp64 accumulation. Arguments already validated.
void reference_micro_attention(const KvPool& pool, const MaParams& params, const MaQuery& query,
                               const MaOutput& out);

}  // namespace infllm::cpu::detail
