// chat_template_test.cpp: ChatML, Llama-3, Llama-2 and Mistral rendering against Jinja's
// rendering of the real templates (tests/data/tokenizer/chat_golden.json and
// spm_chat_golden.json, made by scripts/golden/make_tokenizer_golden.py and
// make_sentencepiece_golden.py), recognition of the families, unknown templates.
#include "model/tokenizer/chat_template.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace infllm::model {
namespace {

using nlohmann::json;

const std::string kDataDir = std::string(INFLLM_SOURCE_DIR) + "/tests/data/tokenizer/";

const json& golden() {
  static const json j = [] {
    std::ifstream in(kDataDir + "chat_golden.json");
    return json::parse(in);
  }();
  return j;
}

std::vector<ChatMessage> conversation(const std::string& name) {
  std::vector<ChatMessage> out;
  for (const auto& m : golden()["conversations"][name]) {
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

ChatTemplate recognize_golden(const std::string& name) {
  return ChatTemplate::recognize(golden()["templates"][name].get<std::string>(), name + ".json");
}

void expect_golden_renders(const std::string& template_name) {
  const ChatTemplate t = recognize_golden(template_name);
  int checked = 0;
  for (const auto& c : golden()["cases"]) {
    if (c["template"] != template_name) continue;
    const auto conv = c["conversation"].get<std::string>();
    const bool gen = c["add_generation_prompt"].get<bool>();
    SCOPED_TRACE(conv + (gen ? " +generation prompt" : ""));
    EXPECT_EQ(t.render(conversation(conv), gen), c["text"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(ChatTemplate, Smollm2TemplateIsChatMlWithItsDefaultSystem) {
  const ChatTemplate t = recognize_golden("smollm2");
  EXPECT_EQ(t.family(), ChatTemplateFamily::kChatMl);
  EXPECT_EQ(t.default_system(),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

TEST(ChatTemplate, Smollm2RendersLikeJinja) { expect_golden_renders("smollm2"); }

TEST(ChatTemplate, PlainChatMlRendersLikeJinja) {
  EXPECT_EQ(recognize_golden("chatml").default_system(), "");
  expect_golden_renders("chatml");
}

TEST(ChatTemplate, Llama3RendersLikeJinja) {
  EXPECT_EQ(recognize_golden("llama3").family(), ChatTemplateFamily::kLlama3);
  expect_golden_renders("llama3");
}

TEST(ChatTemplate, Smollm2RenderedPromptTokenizesLikeHuggingFace) {
  const Tokenizer tok = Tokenizer::from_json_file(kDataDir + "smollm2_tokenizer.json");
  const ChatTemplate t = recognize_golden("smollm2");
  for (const auto& c : golden()["cases"]) {
    if (c["template"] != "smollm2") continue;
    SCOPED_TRACE(c["conversation"].get<std::string>());
    const std::string text =
        t.render(conversation(c["conversation"]), c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(tok.encode(text, {.add_special = false}), c["ids"].get<std::vector<TokenId>>());
  }
}

TEST(ChatTemplate, Llama31AlwaysOpensWithTheKnowledgeDateBlock) {
  // The markers a Llama-3.1 template carries; the rendering follows Meta's published format.
  const std::string source =
      "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" "
      "%}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting "
      "Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}"
      "{{- system_message }}{{- \"<|eot_id|>\" }}{{- '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}";
  const ChatTemplate t = ChatTemplate::recognize(source, "llama31.gguf");
  const std::vector<ChatMessage> messages = {{"system", " Be brief. "}, {"user", "Hi"}};
  EXPECT_EQ(t.render(messages),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, GenerationPromptAloneForNoMessages) {
  EXPECT_EQ(recognize_golden("smollm2").render({}), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, EscapedNewlinesInTheTemplateStillGiveTheDefaultSystem) {
  const ChatTemplate t = ChatTemplate::recognize(
      "{{ '<|im_start|>system\\nBe kind.<|im_end|>\\n' }}<|im_start|><|im_end|>", "t");
  EXPECT_EQ(t.default_system(), "Be kind.");
}

TEST(ChatTemplate, UnknownTemplateIsInputErrorQuotingIt) {
  const std::string gemma =
      "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
      "{{ message['content'] }}<end_of_turn>\n{% endfor %}";
  try {
    ChatTemplate::recognize(gemma, "gemma.gguf");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "gemma.gguf");
    EXPECT_EQ(e.where(), "chat_template");
    EXPECT_NE(std::string(e.what()).find("<start_of_turn>"), std::string::npos) << e.what();
  }
}

// Llama-2-chat and Mistral-7B-Instruct's templates against Jinja (spm_chat_golden.json, made
// by scripts/golden/make_sentencepiece_golden.py), including the conversations they refuse,
// and the SentencePiece tokenizer's ids of the renderings.
TEST(ChatTemplate, Llama2AndMistralRenderLikeJinja) {
  std::ifstream in(kDataDir + "spm_chat_golden.json");
  const json g = json::parse(in);
  const Tokenizer tok = Tokenizer::from_json_file(kDataDir + "spm_legacy_tokenizer.json");
  const std::map<std::string, ChatTemplateFamily> families = {
      {"llama2", ChatTemplateFamily::kLlama2},
      {"mistral", ChatTemplateFamily::kMistral},
      {"mistral_system", ChatTemplateFamily::kMistralSystem}};
  int rendered = 0, refused = 0;
  for (const auto& c : g.at("cases")) {
    const auto name = c.at("template").get<std::string>();
    const auto conv = c.at("conversation").get<std::string>();
    SCOPED_TRACE(name + " / " + conv);
    const ChatTemplate t =
        ChatTemplate::recognize(g.at("templates").at(name).get<std::string>(), name);
    EXPECT_EQ(t.family(), families.at(name));
    std::vector<ChatMessage> messages;
    for (const auto& m : g.at("conversations").at(conv)) {
      messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
    }
    if (c.contains("refused")) {
      EXPECT_THROW(t.render(messages), ChatRenderError);
      ++refused;
      continue;
    }
    const std::string text = t.render(messages);
    EXPECT_EQ(text, c.at("text").get<std::string>());
    EXPECT_EQ(tok.encode(text, {.add_special = false}), c.at("ids").get<std::vector<TokenId>>());
    ++rendered;
  }
  EXPECT_EQ(rendered, 10);
  EXPECT_EQ(refused, 5);
}

TEST(ChatTemplate, MissingTemplateIsInputError) {
  EXPECT_THROW(ChatTemplate::recognize("", "model.gguf"), InputError);
}

}  // namespace
}  // namespace infllm::model
