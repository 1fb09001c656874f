// cmd_generate.cpp: `infllm generate` on one rank: load the model and tokenizer, read and check
// every input document, then run the single-instance engine and write one result per request.
//
// Order matters for "nothing half-written": everything that can be wrong with the inputs (model
// files, tokenizer, documents, options) is checked before the output is created.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/cli.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/results.hpp"
#include "model/chat_template.hpp"
#include "model/generator.hpp"
#include "model/tokenizer.hpp"
#include "model/weights.hpp"

namespace infllm::app {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

model::Tokenizer load_tokenizer(const model::LoadedModel& m) {
  if (m.gguf_tokenizer) return model::Tokenizer::from_gguf(*m.gguf_tokenizer, m.path);
  if (m.tokenizer_json_path.empty()) {
    throw InputError(m.path, "", "no tokenizer.json next to the model (needed to encode text)");
  }
  model::Tokenizer t = model::Tokenizer::from_json_file(m.tokenizer_json_path);
  if (!t.bos_id() && m.config.bos_token_id) t.set_bos_id(static_cast<std::int32_t>(*m.config.bos_token_id));
  if (!t.eos_id() && !m.config.eos_token_ids.empty()) {
    t.set_eos_id(static_cast<std::int32_t>(m.config.eos_token_ids.front()));
  }
  return t;
}

// The chat template the model carries: GGUF metadata, or tokenizer_config.json beside an HF model.
std::string chat_template_text(const model::LoadedModel& m) {
  if (m.gguf_tokenizer) return m.gguf_tokenizer->chat_template;
  const auto path = std::filesystem::path(m.path) / "tokenizer_config.json";
  std::ifstream in(path);
  if (!in) return "";
  try {
    const json j = json::parse(in);
    if (j.contains("chat_template") && j["chat_template"].is_string()) {
      return j["chat_template"].get<std::string>();
    }
  } catch (const json::exception& e) {
    throw InputError(path.string(), "", std::string("not JSON: ") + e.what());
  }
  return "";
}

std::vector<std::int32_t> eos_ids(const model::LoadedModel& m, const model::Tokenizer& t) {
  std::vector<std::int32_t> ids;
  for (auto id : m.config.eos_token_ids) ids.push_back(static_cast<std::int32_t>(id));
  if (t.eos_id() && std::find(ids.begin(), ids.end(), *t.eos_id()) == ids.end()) {
    ids.push_back(*t.eos_id());
  }
  // Chat models end a turn with their end-of-turn token (ChatML <|im_end|>, Llama-3 <|eot_id|>).
  for (const char* eot : {"<|im_end|>", "<|eot_id|>"}) {
    if (auto id = t.find_token(eot); id && std::find(ids.begin(), ids.end(), *id) == ids.end()) {
      ids.push_back(*id);
    }
  }
  return ids;
}

model::GenRequest make_request(const io::Document& doc, const GenerateConfig& cfg,
                               const model::Tokenizer& tok,
                               const std::optional<model::ChatTemplate>& chat,
                               const std::string& input) {
  model::GenRequest r;
  r.id = doc.id;
  if (doc.tokens) {
    r.prompt = *doc.tokens;
  } else if (doc.prompt) {
    r.prompt = tok.encode(*doc.prompt);
  } else {
    if (!chat) throw InputError(input, doc.where, "messages given but the model has no chat template");
    std::vector<model::ChatMessage> msgs;
    for (const auto& m : *doc.messages) msgs.push_back({m.role, m.content});
    r.prompt = tok.encode(chat->render(msgs), model::EncodeOptions{.add_special = false});
  }
  const auto& o = doc.overrides;
  r.max_new_tokens = doc.max_new_tokens.value_or(cfg.max_new_tokens);
  r.min_new_tokens = o.min_new_tokens.value_or(cfg.min_new_tokens);
  r.ignore_eos = o.ignore_eos.value_or(cfg.ignore_eos);
  r.stop = o.stop.value_or(cfg.stop);
  r.sampling.temperature = o.temperature.value_or(cfg.temperature);
  r.sampling.top_p = o.top_p.value_or(cfg.top_p);
  r.sampling.top_k = o.top_k.value_or(cfg.top_k);
  r.sampling.min_p = o.min_p.value_or(cfg.min_p);
  r.sampling.seed = o.seed.value_or(cfg.seed);
  r.sampling.logprobs = cfg.logprobs;
  return r;
}

io::ResultRecord to_record(model::GenResult&& g) {
  io::ResultRecord r;
  r.id = std::move(g.id);
  r.status = model::status_name(g.status);
  r.reason = std::move(g.reason);
  r.finish_reason = std::move(g.finish_reason);
  r.tokens = std::move(g.tokens);
  r.text = std::move(g.text);
  r.prompt_tokens = g.prompt_tokens;
  r.queue_s = g.queue_s;
  r.first_token_s = g.first_token_s;
  r.total_s = g.total_s;
  r.preemptions = g.preemptions;
  r.top_logprobs = std::move(g.top_logprobs);
  return r;
}

}  // namespace

int run_generate(const GenerateConfig& cfg) {
  const auto t0 = Clock::now();
  cpu::set_threads(cfg.threads > 0 ? cfg.threads : cpu::default_threads_per_rank(1));

  // 1. Everything that can be wrong with the inputs, before the output exists.
  const model::LoadedModel m = model::load_model(cfg.model);
  const model::Tokenizer tok = load_tokenizer(m);
  const auto docs = io::read_documents(cfg.input, io::ReadOptions{m.config.vocab_size});
  // The chat template is recognized only when some document has `messages`, so a model whose
  // template infllm does not know still serves plain prompts.
  std::optional<model::ChatTemplate> chat;
  if (std::any_of(docs.begin(), docs.end(), [](const auto& d) { return d.messages.has_value(); })) {
    const std::string chat_text = chat_template_text(m);
    if (!chat_text.empty()) chat = model::ChatTemplate::recognize(chat_text, m.path);
  }
  std::vector<model::GenRequest> requests;
  std::int64_t prompt_tokens = 0;
  for (const auto& d : docs) {
    requests.push_back(make_request(d, cfg, tok, chat, cfg.input));
    prompt_tokens += static_cast<std::int64_t>(requests.back().prompt.size());
  }
  cpu::CpuBackend backend;
  model::Forward forward(m.config, m.weights, backend);
  const BlockGeometry geometry = forward.geometry(cfg.block_tokens, KvDtype::kF32);
  // NOTE: --kv-pool-mb 0 (automatic) on the CPU build: 512 MiB per rank.
  const double pool_mb = cfg.kv_pool_mb > 0 ? cfg.kv_pool_mb : 512.0;
  const auto slots = static_cast<std::int32_t>(pool_mb * 1048576.0 / double(geometry.block_bytes()));
  if (slots < 1) {
    throw UsageError("kv-pool-mb", "holds no rBlock of this model (" +
                                       std::to_string(geometry.block_bytes()) + " bytes each)");
  }

  // 2. The output.
  const json run_attributes = {{"model", cfg.model},        {"input", cfg.input},
                               {"ranks", 1},                {"version", INFLLM_VERSION},
                               {"block_tokens", cfg.block_tokens}, {"kv_pool_mb", pool_mb},
                               {"temperature", cfg.temperature},   {"seed", cfg.seed}};
  auto sink = io::open_result_sink(cfg.output, io::OutputOptions{.overwrite = cfg.overwrite},
                                   run_attributes);
  if (!cfg.quiet) {
    std::cerr << "infllm generate: " << docs.size() << " requests, " << prompt_tokens
              << " prompt tokens; model " << m.path << " (" << m.config.num_layers << " layers, "
              << m.config.hidden_size << " hidden); pool " << slots << " rBlocks of "
              << geometry.block_bytes() << " bytes; " << cpu::threads() << " threads\n";
  }

  // 3. The run.
  model::GeneratorOptions options;
  options.block_tokens = cfg.block_tokens;
  options.pool_slots = slots;
  options.max_batch_tokens = cfg.max_batch_tokens;
  options.max_num_seqs = cfg.max_num_seqs;
  options.eos_ids = eos_ids(m, tok);
  model::Generator generator(forward, &tok, options);
  std::size_t finished = 0, not_done = 0;
  std::int64_t generated = 0;
  json by_status = json::object();
  const auto stats = generator.run(std::move(requests), [&](model::GenResult&& g) {
    ++finished;
    generated += static_cast<std::int64_t>(g.tokens.size());
    if (g.status != model::GenStatus::kDone) ++not_done;
    const std::string status = model::status_name(g.status);
    by_status[status] = by_status.value(status, 0) + 1;
    if (!cfg.quiet) {
      std::cerr << "infllm generate: [" << finished << "/" << docs.size() << "] " << g.id << " "
                << status << (g.reason.empty() ? "" : " (" + g.reason + ")") << ", "
                << g.tokens.size() << " tokens in " << g.total_s << " s\n";
    }
    sink->append(to_record(std::move(g)));
  });
  sink->close();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!cfg.metrics.empty()) {
    const json metrics = {{"requests", docs.size()},
                          {"requests_by_status", by_status},
                          {"prompt_tokens", prompt_tokens},
                          {"generated_tokens", generated},
                          {"prefill_tokens_computed", stats.prefill_tokens},
                          {"decode_tokens", stats.decode_tokens},
                          {"steps", stats.steps},
                          {"preemptions", stats.preemptions},
                          {"pool_slots", slots},
                          {"pool_used_hwm", stats.pool_used_hwm},
                          {"loans_total", 0},
                          {"ledger_outstanding_end", 0},
                          {"wall_s", seconds},
                          {"ranks", 1}};
    std::ofstream(cfg.metrics) << metrics.dump(2) << "\n";
  }
  if (!cfg.quiet) {
    std::cerr << "infllm generate: " << finished << " requests (" << by_status.dump() << "), "
              << generated << " tokens generated in " << seconds << " s; output " << cfg.output
              << "\n";
  }
  return static_cast<int>(not_done == 0 ? ExitCode::kOk : ExitCode::kSomeNotDone);
}

}  // namespace infllm::app
