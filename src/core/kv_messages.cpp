// kv_messages.cpp: names of the protocol's enums, for logs and outputs.
#include "core/kv_messages.hpp"

namespace infllm {

const char* end_reason_name(EndReason reason) {
  switch (reason) {
    case EndReason::kKvCapacity:
      return "kv_capacity";
  }
  return "?";
}

}  // namespace infllm
