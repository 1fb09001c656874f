// fuzz_chat_template.cpp: the chat template renderer (model/tokenizer/chat_template.hpp). The
// input is split at NUL bytes: the first part is the template text, the rest alternate role and
// content of the messages. A template infllm does not recognise is an InputError; a
// conversation the template refuses is a ChatRenderError; nothing else may escape.
#include <string>
#include <vector>

#include "fuzz/fuzz_input.hpp"
#include "model/tokenizer/chat_template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      parts.emplace_back();
    } else {
      parts.back() += static_cast<char>(data[i]);
    }
  }
  std::vector<infllm::model::ChatMessage> messages;
  for (std::size_t i = 1; i + 1 < parts.size(); i += 2) {
    messages.push_back(infllm::model::ChatMessage{parts[i], parts[i + 1]});
  }
  infllm::fuzz::refusals_allowed([&] {
    const auto t = infllm::model::ChatTemplate::recognize(parts[0], "tokenizer_config.json");
    try {
      (void)t.render(messages, true);
      (void)t.render(messages, false);
    } catch (const infllm::model::ChatRenderError&) {
    }
  });
  return 0;
}
