// chat_template.hpp: rendering chat `messages` into the prompt text a model was trained on.
//
// Models carry their chat template as a Jinja program (GGUF tokenizer.chat_template,
// tokenizer_config.json "chat_template"). infllm does not embed a Jinja interpreter: it
// recognises the template's family from the markers it writes and renders that family in C++,
// including the parts that vary between members (a default system prompt, trimmed contents).
// Families:
//
//   kChatMl   <|im_start|>{role}\n{content}<|im_end|>\n ... then <|im_start|>assistant\n
//             (SmolLM2, Qwen2). A default system message that the template inserts when the
//             conversation has none (SmolLM2: "You are a helpful AI assistant named SmolLM,
//             trained by Hugging Face") is read out of the template and inserted too.
//   kLlama3   {bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ... then
//             <|start_header_id|>assistant<|end_header_id|>\n\n; contents trimmed when the
//             template trims them. Llama-3.1+ templates always open with a system block
//             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system}";
//             NOTE: 3.2 templates put today's date there; infllm keeps the fixed default date
//             so that a prompt renders the same on every run.
//   kLlama2   <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
//             (Llama-2-chat); contents stripped; no generation prompt of its own.
//   kMistral  <s>[INST] {user} [/INST]{assistant}</s>[INST] ... (Mistral-7B-Instruct v0.1/v0.2
//             as first published; a system message is refused, as the template refuses it).
//   kMistralSystem  <s> [INST] {system}\n\n{user} [/INST] {assistant}</s> [INST] ... (the
//             v0.2 template as later updated, with an optional system message).
//   The last three require user / assistant turns alternating from a user turn.
//
// The rendered text already contains the BOS text where the family has one: encode it with
// EncodeOptions{.add_special = false}, as Hugging Face's apply_chat_template does.
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace infllm::model {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

enum class ChatTemplateFamily { kChatMl, kLlama3, kLlama2, kMistral, kMistralSystem };

// A conversation the template cannot render (its Jinja raises): the roles out of order, or a
// system message where the family has none. The caller names the input record.
class ChatRenderError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ChatTemplate {
 public:
  // Recognises `template_text`; an empty or unknown template throws InputError(source,
  // "chat_template", ...) quoting its start. `bos_token` is the text of the tokenizer's BOS, for
  // templates that write {{ bos_token }}.
  static ChatTemplate recognize(std::string_view template_text, const std::string& source,
                                const std::string& bos_token = "<|begin_of_text|>");

  // The prompt for `messages`, ending with the assistant's header when add_generation_prompt.
  // Throws ChatRenderError for a conversation the template refuses.
  std::string render(std::span<const ChatMessage> messages,
                     bool add_generation_prompt = true) const;

  ChatTemplateFamily family() const { return family_; }
  // The system message inserted when the conversation does not start with one ("" for none).
  const std::string& default_system() const { return default_system_; }

 private:
  ChatTemplateFamily family_ = ChatTemplateFamily::kChatMl;
  std::string default_system_;
  std::string bos_;                     // written before the first message (Llama-3)
  bool trim_content_ = false;           // Jinja's | trim on each content
  bool knowledge_date_header_ = false;  // Llama-3.1+: the system block is always there
};

std::string_view chat_template_family_name(ChatTemplateFamily family);

// The chat_template of a Hugging Face directory's tokenizer_config.json; "" when the file or the
// key is absent. A tokenizer_config.json that is not JSON throws InputError naming it.
std::string hf_chat_template_text(const std::string& dir);

}  // namespace infllm::model
