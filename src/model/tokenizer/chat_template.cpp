// chat_template.cpp: recognising and rendering ChatML, Llama-3, Llama-2 and Mistral chat
// templates (see the header). Recognition reads markers and literal strings out of the Jinja
// source; it never evaluates Jinja.
#include "model/tokenizer/chat_template.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"

namespace infllm::model {

namespace {

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// Jinja string literals may hold "\n" either as a real newline or as the two characters '\'
// 'n' (when the template was written into JSON with its escapes doubled); both mean a newline.
std::string unescape(std::string_view literal) {
  std::string out;
  for (std::size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += literal[i];
    }
  }
  return out;
}

// The default system message of a ChatML template: the plain literal between
// "<|im_start|>system\n" and "<|im_end|>", if the template has one (SmolLM2, Qwen2).
std::string chatml_default_system(std::string_view t) {
  for (std::string_view open : {"<|im_start|>system\n", "<|im_start|>system\\n"}) {
    const auto begin = t.find(open);
    if (begin == std::string_view::npos) continue;
    const auto text_begin = begin + open.size();
    const auto end = t.find("<|im_end|>", text_begin);
    if (end == std::string_view::npos) continue;
    const std::string_view literal = t.substr(text_begin, end - text_begin);
    // Anything Jinja-like inside means the message is built from variables, not a default.
    if (literal.find_first_of("'\"{}+") != std::string_view::npos) continue;
    return unescape(literal);
  }
  return "";
}

std::string trim(const std::string& s) {
  const auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace

// [INST] families: the system message (if the first message is one) and the rest, which must
// alternate user / assistant starting with a user turn, as their templates require.
std::span<const ChatMessage> alternating_turns(std::span<const ChatMessage> messages,
                                               bool system_allowed, std::string* system) {
  if (!messages.empty() && messages.front().role == "system") {
    if (!system_allowed) {
      throw ChatRenderError("this chat template supports only user and assistant roles");
    }
    *system = messages.front().content;
    messages = messages.subspan(1);
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& want = i % 2 == 0 ? "user" : "assistant";
    if (messages[i].role != want) {
      throw ChatRenderError("message " + std::to_string(i + 1) + " has role '" + messages[i].role +
                            "' where the template needs '" + want +
                            "' (user and assistant turns must alternate)");
    }
  }
  return messages;
}

std::string_view chat_template_family_name(ChatTemplateFamily family) {
  switch (family) {
    case ChatTemplateFamily::kChatMl:
      return "chatml";
    case ChatTemplateFamily::kLlama3:
      return "llama3";
    case ChatTemplateFamily::kLlama2:
      return "llama2";
    case ChatTemplateFamily::kMistral:
      return "mistral";
    case ChatTemplateFamily::kMistralSystem:
      return "mistral (with system)";
  }
  return "?";
}

ChatTemplate ChatTemplate::recognize(std::string_view t, const std::string& source,
                                     const std::string& bos_token) {
  ChatTemplate out;
  if (contains(t, "<|im_start|>") && contains(t, "<|im_end|>")) {
    out.family_ = ChatTemplateFamily::kChatMl;
    out.default_system_ = chatml_default_system(t);
    return out;
  }
  if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>") &&
      contains(t, "<|eot_id|>")) {
    out.family_ = ChatTemplateFamily::kLlama3;
    if (contains(t, "bos_token")) {
      out.bos_ = bos_token;
    } else if (contains(t, "<|begin_of_text|>")) {
      out.bos_ = "<|begin_of_text|>";
    }
    out.trim_content_ = contains(t, "| trim") || contains(t, "|trim");
    out.knowledge_date_header_ = contains(t, "Cutting Knowledge Date");
    return out;
  }
  if (contains(t, "[INST]") && contains(t, "[/INST]")) {
    if (contains(t, "<<SYS>>") && contains(t, "content.strip()")) {
      out.family_ = ChatTemplateFamily::kLlama2;
      return out;
    }
    if (contains(t, "' [INST] ' + system_message")) {
      out.family_ = ChatTemplateFamily::kMistralSystem;
      return out;
    }
    if (contains(t, "'[INST] ' + message['content'] + ' [/INST]'") &&
        !contains(t, "system_message") && contains(t, "message['content'] + eos_token")) {
      out.family_ = ChatTemplateFamily::kMistral;
      return out;
    }
  }
  if (t.empty()) throw InputError(source, "chat_template", "the model has no chat template");
  std::string head(t.substr(0, 160));
  if (t.size() > head.size()) head += "...";
  throw InputError(source, "chat_template",
                   "unrecognised chat template (known families: ChatML with <|im_start|>, "
                   "Llama-3 with <|start_header_id|>, Llama-2 [INST] with <<SYS>>, Mistral "
                   "v0.1/v0.2 [INST]): \"" +
                       head + "\"");
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) const {
  std::string out;
  const bool has_system = !messages.empty() && messages.front().role == "system";
  if (family_ == ChatTemplateFamily::kChatMl) {
    if (!messages.empty() && !has_system && !default_system_.empty()) {
      out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    }
    for (const auto& m : messages) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    }
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  if (family_ == ChatTemplateFamily::kLlama2) {
    std::string system;
    const auto turns = alternating_turns(messages, true, &system);
    for (std::size_t i = 0; i < turns.size(); ++i) {
      std::string content = turns[i].content;
      if (i == 0 && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
      if (turns[i].role == "user") {
        out += "<s>[INST] " + trim(content) + " [/INST]";
      } else {
        out += " " + trim(content) + " </s>";
      }
    }
    return out;
  }
  if (family_ == ChatTemplateFamily::kMistral || family_ == ChatTemplateFamily::kMistralSystem) {
    const bool with_system = family_ == ChatTemplateFamily::kMistralSystem;
    std::string system;
    const auto turns = alternating_turns(messages, with_system, &system);
    out += "<s>";
    for (std::size_t i = 0; i < turns.size(); ++i) {
      const std::string& content = turns[i].content;
      if (turns[i].role == "user") {
        out += with_system ? " [INST] " : "[INST] ";
        if (i == 0 && has_system) out += system + "\n\n";
        out += content + " [/INST]";
      } else {
        out += (with_system ? " " : "") + content + "</s>";
      }
    }
    return out;
  }
  // Llama-3.
  auto content = [&](const std::string& c) { return trim_content_ ? trim(c) : c; };
  auto block = [&](const std::string& role, const std::string& text) {
    out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + text + "<|eot_id|>";
  };
  out += bos_;
  std::size_t first = 0;
  if (knowledge_date_header_) {
    const std::string system = has_system ? content(messages.front().content) : "";
    block("system", "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + system);
    first = has_system ? 1 : 0;
  }
  for (std::size_t i = first; i < messages.size(); ++i) {
    block(messages[i].role, content(messages[i].content));
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string hf_chat_template_text(const std::string& dir) {
  const auto path = std::filesystem::path(dir) / "tokenizer_config.json";
  std::ifstream in(path);
  if (!in) return "";
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    if (j.contains("chat_template") && j["chat_template"].is_string()) {
      return j["chat_template"].get<std::string>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path.string(), "", std::string("not JSON: ") + e.what());
  }
  return "";
}

}  // namespace infllm::model
