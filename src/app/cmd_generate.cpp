// cmd_generate.cpp: `infllm generate` on one rank: load the model and tokenizer, read and check
// every input document, then run the single-instance engine and write one result per request.
//
// Order matters for "nothing half-written": everything that can be wrong with the inputs (model
// files, tokenizer, documents, options) is checked before the output is created.
//
// The job's life: `--resume` skips the requests the output already holds (io/results.hpp,
// io/fingerprint.hpp); SIGUSR1, SIGTERM and SIGINT set a flag that stops the engine at the next
// step boundary, what finished is fsync'ed, and the exit code is 4; progress goes to stderr
// (io/progress.hpp).
//
// Test-only environment variables (not part of the user contract):
//   INFLLM_TEST_KILL_AFTER=N       SIGKILL itself right after the Nth record of this run is
//                                  appended and fsync'ed (a deterministic kill for resume tests)
//   INFLLM_TEST_STEP_DELAY_MS=M    sleep M ms after every engine step (a run slow enough to be
//                                  signalled mid-way, even on a fast machine)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "app/cli.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/fingerprint.hpp"
#include "io/progress.hpp"
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
  if (!t.bos_id() && m.config.bos_token_id) {
    t.set_bos_id(static_cast<std::int32_t>(*m.config.bos_token_id));
  }
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
    if (!chat) {
      throw InputError(input, doc.where, "messages given but the model has no chat template");
    }
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

// The options that change outputs: part of the fingerprint (io/fingerprint.hpp). Block size,
// batching, threads and pool size are not (docs/design.md, Determinism).
json output_options(const GenerateConfig& cfg) {
  return {{"max-new-tokens", cfg.max_new_tokens},
          {"min-new-tokens", cfg.min_new_tokens},
          {"ignore-eos", cfg.ignore_eos},
          {"stop", cfg.stop},
          {"temperature", cfg.temperature},
          {"top-p", cfg.top_p},
          {"top-k", cfg.top_k},
          {"min-p", cfg.min_p},
          {"seed", cfg.seed},
          {"logprobs", cfg.logprobs}};
}

// Set by the signal handler; read at step boundaries.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_stop_signal(int sig) {
  // A second Ctrl-C means "now": the default action, without the flush.
  if (sig == SIGINT && g_stop_signal.load() != 0) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_stop_signal.store(sig);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGUSR1, SIGTERM, SIGINT}) sigaction(sig, &sa, nullptr);
}

long env_number(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtol(v, nullptr, 10) : 0;
}

}  // namespace

int run_generate(const GenerateConfig& cfg) {
  install_stop_handlers();
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
  const auto slots =
      static_cast<std::int32_t>(pool_mb * 1048576.0 / double(geometry.block_bytes()));
  if (slots < 1) {
    throw UsageError("kv-pool-mb", "holds no rBlock of this model (" +
                                       std::to_string(geometry.block_bytes()) + " bytes each)");
  }

  // 2. The output (and, on resume, what an earlier run finished).
  const json fingerprint = io::make_fingerprint(cfg.model, cfg.input, output_options(cfg),
                                                static_cast<std::int64_t>(docs.size()));
  const json run_attributes = {{"model", cfg.model},
                               {"input", cfg.input},
                               {"ranks", 1},
                               {"version", INFLLM_VERSION},
                               {"block_tokens", cfg.block_tokens},
                               {"kv_pool_mb", pool_mb},
                               {"temperature", cfg.temperature},
                               {"seed", cfg.seed},
                               {"fingerprint", fingerprint}};
  auto sink = io::open_result_sink(
      cfg.output, io::OutputOptions{.overwrite = cfg.overwrite, .resume = cfg.resume},
      run_attributes, &fingerprint);
  std::size_t not_done = 0;
  json by_status = json::object();
  std::set<std::string> earlier_ids;
  for (const auto& r : sink->earlier()) {
    earlier_ids.insert(r.id);
    by_status[r.status] = by_status.value(r.status, 0) + 1;
    if (r.status != "done") ++not_done;
  }
  std::erase_if(requests, [&](const model::GenRequest& r) { return earlier_ids.count(r.id) > 0; });
  if (!cfg.quiet) {
    std::cerr << "infllm generate: " << docs.size() << " requests, " << prompt_tokens
              << " prompt tokens; model " << m.path << " (" << m.config.num_layers << " layers, "
              << m.config.hidden_size << " hidden); pool " << slots << " rBlocks of "
              << geometry.block_bytes() << " bytes; " << cpu::threads() << " threads\n";
    if (cfg.resume) {
      std::cerr << "infllm generate: resuming " << cfg.output << ": " << earlier_ids.size()
                << " finished earlier, " << requests.size() << " to run";
      if (sink->torn_bytes_dropped() > 0) {
        std::cerr << "; dropped a torn last line (" << sink->torn_bytes_dropped() << " bytes)";
      }
      std::cerr << "\n";
    }
  }

  // 3. The run.
  model::GeneratorOptions options;
  options.block_tokens = cfg.block_tokens;
  options.pool_slots = slots;
  options.max_batch_tokens = cfg.max_batch_tokens;
  options.max_num_seqs = cfg.max_num_seqs;
  options.eos_ids = eos_ids(m, tok);
  model::Generator generator(forward, &tok, options);
  std::optional<io::ProgressReporter> progress;
  if (!cfg.quiet) {
    progress.emplace(std::cerr, ::isatty(STDERR_FILENO) != 0, docs.size(), earlier_ids.size());
  }
  const long kill_after = env_number("INFLLM_TEST_KILL_AFTER");
  const long step_delay_ms = env_number("INFLLM_TEST_STEP_DELAY_MS");
  std::size_t finished = 0;
  std::int64_t generated = 0;
  model::RunHooks hooks;
  hooks.stop = [] { return g_stop_signal.load() != 0; };
  hooks.on_step = [&](const model::StepProgress& p) {
    if (progress) {
      progress->on_step(io::ProgressSample{p.prefill_tokens, p.decode_tokens, p.pool_used,
                                           p.pool_slots, /*loans_outstanding=*/0});
    }
    if (step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms));
  };
  const auto stats = generator.run(
      std::move(requests),
      [&](model::GenResult&& g) {
        ++finished;
        generated += static_cast<std::int64_t>(g.tokens.size());
        if (g.status != model::GenStatus::kDone) ++not_done;
        const std::string status = model::status_name(g.status);
        by_status[status] = by_status.value(status, 0) + 1;
        sink->append(to_record(std::move(g)));
        if (progress) progress->on_result();
        if (kill_after > 0 && finished == static_cast<std::size_t>(kill_after)) {
          sink->flush();
          std::raise(SIGKILL);
        }
      },
      hooks);
  sink->close();
  if (progress) progress->finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!cfg.metrics.empty()) {
    const json metrics = {{"requests", docs.size()},
                          {"requests_earlier", earlier_ids.size()},
                          {"requests_by_status", by_status},
                          {"stopped_by_signal", stats.stopped},
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
  if (stats.stopped) {
    if (!cfg.quiet) {
      const int sig = g_stop_signal.load();
      std::cerr << "infllm generate: stopped by "
                << (sig == SIGUSR1   ? "SIGUSR1"
                    : sig == SIGTERM ? "SIGTERM"
                                     : "SIGINT")
                << " after " << earlier_ids.size() + finished << "/" << docs.size()
                << " requests (output fsync'ed); run again with --resume to finish " << cfg.output
                << "\n";
    }
    return static_cast<int>(ExitCode::kStopped);
  }
  if (!cfg.quiet) {
    std::cerr << "infllm generate: done: " << earlier_ids.size() + finished << " requests ("
              << by_status.dump() << "), " << generated << " tokens generated in " << seconds
              << " s; output " << cfg.output << "\n";
  }
  return static_cast<int>(not_done == 0 ? ExitCode::kOk : ExitCode::kSomeNotDone);
}

}  // namespace infllm::app
