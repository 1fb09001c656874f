// cmd_generate.cpp: `infllm generate`, alone or under `mpiexec -n N`: every rank loads the model
// (one copy of the values per node, src/dist/shared_weights.hpp) and the tokenizer, reads and
// checks every input document; rank 0 opens the output; then the engine (src/dist/engine.hpp)
// runs and rank 0 writes one result per request.
//
// Order matters for "nothing half-written": everything that can be wrong with the inputs (model
// files, tokenizer, documents, options) is checked before the output is created. The ranks
// agree on the set-up's outcome (an all-reduce of the exit code) before the run starts, so a
// bad input ends every rank with exit 2 and one message, from the lowest rank that saw it. An
// exception during the run aborts the whole job with exit 3 (dist::abort_job).
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
//   INFLLM_TEST_DELAY_RANK=R       with INFLLM_TEST_STEP_DELAY_MS: only rank R sleeps (a rank
//                                  slower than the others, whose wait they fill)
//   INFLLM_TEST_FAIL_RANK=R        with INFLLM_TEST_FAIL_STEP=S: rank R throws an internal error
//                                  after its Sth step (the others are then mid-exchange)
//   INFLLM_TEST_CUT_FILLS=1        every fill step is cut at its last layer and dropped, as when
//                                  the last rank arrives during it (EngineHooks)
#include <signal.h>
#include <sys/stat.h>
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
#include <string_view>
#include <thread>

#include "app/cli.hpp"
#include "backend/cpu/cpu_backend.hpp"
#if defined(INFLLM_HAVE_CUDA_BACKEND)
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_device.hpp"
#endif
#include "backend/cpu/cpu_threads.hpp"
#include "core/errors.hpp"
#include "dist/engine.hpp"
#include "dist/mpi_check.hpp"
#include "dist/mpi_session.hpp"
#include "dist/shared_weights.hpp"
#include "io/documents.hpp"
#include "io/fingerprint.hpp"
#include "io/progress.hpp"
#include "io/results.hpp"
#include "io/write_file.hpp"
#include "model/formats/hf_cache.hpp"
#include "model/formats/weights.hpp"
#include "model/sampling/generator.hpp"
#include "model/tokenizer/chat_template.hpp"
#include "model/tokenizer/tokenizer.hpp"

#include <mpi.h>

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
  return model::hf_chat_template_text(m.path);
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
    try {
      r.prompt = tok.encode(chat->render(msgs), model::EncodeOptions{.add_special = false});
    } catch (const model::ChatRenderError& e) {
      throw InputError(input, doc.where + " messages", e.what());
    }
  }
  const auto& o = doc.overrides;
  r.max_new_tokens = doc.max_new_tokens.value_or(cfg.max_new_tokens);
  r.min_new_tokens = o.min_new_tokens.value_or(cfg.min_new_tokens);
  // One rule with the command line's --min-new-tokens, on the values this request runs with.
  if (r.min_new_tokens > r.max_new_tokens) {
    throw InputError(input, doc.where + ", field min_new_tokens",
                     std::to_string(r.min_new_tokens) + " exceeds max_new_tokens " +
                         std::to_string(r.max_new_tokens));
  }
  r.ignore_eos = o.ignore_eos.value_or(cfg.ignore_eos);
  r.stop = o.stop.value_or(cfg.stop);
  r.sampling.temperature = o.temperature.value_or(cfg.temperature);
  r.sampling.top_p = o.top_p.value_or(cfg.top_p);
  r.sampling.top_k = o.top_k.value_or(cfg.top_k);
  r.sampling.min_p = o.min_p.value_or(cfg.min_p);
  r.sampling.seed = o.seed.value_or(static_cast<std::uint64_t>(cfg.seed));
  r.sampling.logprobs = cfg.logprobs;
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

bool stop_signalled() { return g_stop_signal.load() != 0; }

long env_number(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtol(v, nullptr, 10) : 0;
}

struct Setup {
  std::unique_ptr<Backend> backend;
  std::string backend_line;  // "cpu", "cuda:0 (bf16 weights)"
  json backend_options;      // what the backend changes in outputs (part of the fingerprint)
  std::unique_ptr<dist::NodeWeights> weights;
  std::optional<model::Tokenizer> tok;
  std::vector<model::GenRequest> requests;
  std::int64_t prompt_tokens = 0;
  std::size_t documents = 0;
  std::int32_t slots = 0;
  double pool_mb = 0;
  std::size_t block_bytes = 0;
  // Rank 0 only.
  std::unique_ptr<io::ResultSink> sink;
  std::vector<std::size_t> to_run;
  std::set<std::string> earlier_ids;
  std::size_t not_done = 0;
  json by_status = json::object();
};

// Everything that can be wrong before the run; rank 0 also opens the output.
// The output can never be the input: the same file (by device and inode, through links), with
// or without --overwrite, would destroy the input.
void refuse_output_onto_input(const GenerateConfig& cfg) {
  struct stat in {
  }, out{};
  if (::stat(cfg.input.c_str(), &in) != 0 || ::stat(cfg.output.c_str(), &out) != 0) return;
  if (in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
    throw UsageError("output", "'" + cfg.output + "' is the input file '" + cfg.input +
                                   "'; the output can never be the input");
  }
}

// The backend --backend and --weight-dtype ask for on this rank: the CUDA backend binds to the
// GPU of the rank's index on its node (modulo the GPUs it sees). A choice this build or this
// node cannot honour is refused by name.
void make_backend(const GenerateConfig& cfg, int node_rank, Setup& st) {
#if defined(INFLLM_HAVE_CUDA_BACKEND)
  const int devices = cuda::device_count();
#else
  const int devices = 0;
  (void)node_rank;
  if (cfg.backend == BackendChoice::kCuda) {
    throw UsageError("backend",
                     "cuda: this build has no CUDA backend (configure with "
                     "-DINFLLM_CUDA=ON; docs/building.md)");
  }
#endif
  if (cfg.backend == BackendChoice::kCuda && devices == 0) {
    throw UsageError("backend", "cuda: no CUDA device is visible to this rank");
  }
  const bool cuda =
      cfg.backend == BackendChoice::kCuda || (cfg.backend == BackendChoice::kAuto && devices > 0);
  if (!cuda) {
    if (cfg.weight_dtype == WeightDtype::kBF16 || cfg.weight_dtype == WeightDtype::kF16) {
      throw UsageError("weight-dtype", std::string(weight_dtype_name(cfg.weight_dtype)) +
                                           " applies to the CUDA backend, and this rank runs on "
                                           "the CPU (no CUDA device)");
    }
    st.backend = std::make_unique<cpu::CpuBackend>();
    st.backend_line = "cpu";
    st.backend_options = json::object();
    return;
  }
#if defined(INFLLM_HAVE_CUDA_BACKEND)
  const WeightDtype w =
      cfg.weight_dtype == WeightDtype::kAuto ? WeightDtype::kBF16 : cfg.weight_dtype;
  const int device = node_rank % devices;
  st.backend =
      std::make_unique<cuda::CudaBackend>(device, w == WeightDtype::kBF16  ? cuda::GemmType::kBF16
                                                  : w == WeightDtype::kF16 ? cuda::GemmType::kF16
                                                                           : cuda::GemmType::kF32);
  st.backend_line = "cuda:" + std::to_string(device) + " (" + weight_dtype_name(w) + " weights)";
  st.backend_options = {{"backend", "cuda"}, {"weight-dtype", weight_dtype_name(w)}};
#endif
}

void set_up(const GenerateConfig& cfg, int rank, int ranks, int node_rank, Setup& st) {
  refuse_output_onto_input(cfg);
  make_backend(cfg, node_rank, st);
  // A repository id (ORG/NAME[@REV]) is the snapshot in the Hugging Face cache.
  const std::string model_path = model::resolve_model_path(cfg.model);
  st.weights = std::make_unique<dist::NodeWeights>(MPI_COMM_WORLD, model_path);
  const model::LoadedModel& m = st.weights->model();
  st.tok.emplace(load_tokenizer(m));
  std::string input_hash;
  io::ReadOptions read;
  read.vocab_size = m.config.vocab_size;
  read.max_record_bytes = std::int64_t{cfg.max_record_mb} << 20;
  read.stop_requested = stop_signalled;
  read.content_hash = &input_hash;
  const auto docs = io::read_documents(cfg.input, read);
  st.documents = docs.size();
  // The chat template is recognized only when some document has `messages`, so a model whose
  // template infllm does not know still serves plain prompts.
  std::optional<model::ChatTemplate> chat;
  if (std::any_of(docs.begin(), docs.end(), [](const auto& d) { return d.messages.has_value(); })) {
    const std::string chat_text = chat_template_text(m);
    if (!chat_text.empty()) chat = model::ChatTemplate::recognize(chat_text, m.path);
  }
  for (const auto& d : docs) {
    st.requests.push_back(make_request(d, cfg, *st.tok, chat, cfg.input));
    st.prompt_tokens += static_cast<std::int64_t>(st.requests.back().prompt.size());
  }
  const BlockGeometry geometry{
      cfg.engine.instance.block_tokens, static_cast<int>(m.config.num_layers),
      static_cast<int>(m.config.num_kv_heads), static_cast<int>(m.config.head_dim), KvDtype::kF32};
  st.block_bytes = geometry.block_bytes();
  // NOTE: --kv-pool-mb 0 (automatic) on the CPU build: 512 MiB per rank.
  st.pool_mb = cfg.kv_pool_mb > 0 ? cfg.kv_pool_mb : 512.0;
  st.slots = static_cast<std::int32_t>(st.pool_mb * 1048576.0 / double(st.block_bytes));
  if (st.slots < 2) {
    throw UsageError("kv-pool-mb", "holds fewer than 2 rBlocks of this model (" +
                                       std::to_string(st.block_bytes) + " bytes each)");
  }
  if (rank != 0) return;
  // The CPU backend adds nothing, so outputs written before --backend existed still resume.
  json options = output_options(cfg);
  options.update(st.backend_options);
  const json fingerprint = io::make_fingerprint(model_path, cfg.input, options,
                                                static_cast<std::int64_t>(docs.size()), input_hash);
  const json run_attributes = {{"model", model_path},
                               {"input", cfg.input},
                               {"ranks", ranks},
                               {"version", INFLLM_VERSION},
                               {"block_tokens", cfg.engine.instance.block_tokens},
                               {"kv_pool_mb", st.pool_mb},
                               {"kv_policy", kv_policy_name(cfg.engine.policy)},
                               {"temperature", cfg.temperature},
                               {"seed", cfg.seed},
                               {"fingerprint", fingerprint}};
  st.sink = io::open_result_sink(
      cfg.output, io::OutputOptions{.overwrite = cfg.overwrite, .resume = cfg.resume},
      run_attributes, &fingerprint);
  for (const auto& r : st.sink->earlier()) {
    st.earlier_ids.insert(r.id);
    st.by_status[r.status] = st.by_status.value(r.status, 0) + 1;
    if (r.status != "done") ++st.not_done;
  }
  for (std::size_t i = 0; i < st.requests.size(); ++i) {
    if (st.earlier_ids.count(st.requests[i].id) == 0) st.to_run.push_back(i);
  }
}

// The bytes moved by kind: StepStats' `*_bytes` fields, named by what precedes the suffix.
json bytes_json(const StepStats& t) {
  json out = json::object();
  for_each_field(t, [&](std::string_view name, const auto& v) {
    constexpr std::string_view kSuffix = "_bytes";
    if (name.ends_with(kSuffix)) out[std::string(name.substr(0, name.size() - kSuffix.size()))] = v;
  });
  return out;
}

// /steps and /ledger of an HDF5 output.
io::RunTables run_tables(const RunSummary& sum) {
  io::RunTables t;
  // The columns exist even for a run of no step.
  for_each_column(ClusterStep{}, [&](const char* name, const auto&) {
    t.steps.emplace_back(name, std::vector<double>{});
  });
  for (const auto& cs : sum.per_step) {
    std::size_t k = 0;
    for_each_column(cs, [&](const char*, const auto& v) {
      t.steps[k++].second.push_back(static_cast<double>(v));
    });
  }
  const char* names[4] = {"step", "debtor", "creditor", "blocks"};
  for (int k = 0; k < 4; ++k) {
    std::vector<std::int64_t> v;
    for (const auto& row : sum.ledger_snapshots) v.push_back(row[static_cast<std::size_t>(k)]);
    t.ledger.emplace_back(names[k], std::move(v));
  }
  return t;
}

}  // namespace

void install_stop_handlers(bool restart) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart ? SA_RESTART : 0;
  for (int sig : {SIGUSR1, SIGTERM, SIGINT}) sigaction(sig, &sa, nullptr);
}

// NOTE: main() installs the stop handlers (without SA_RESTART) before parsing the options, so
// that a signal ends a blocking read of the input.
int run_generate(const GenerateConfig& cfg) {
  const auto t0 = Clock::now();
  dist::MpiSession mpi(nullptr, nullptr);
  const int rank = mpi.rank(), ranks = mpi.size();
  // The cores this rank sees are shared with the node's ranks bound to them (all of the node's
  // without binding).
  cpu::set_threads(
      cfg.threads > 0 ? cfg.threads : cpu::default_threads_per_rank(mpi.core_sharers()),
      mpi.core_sharers());

  // 1. Everything that can be wrong with the inputs, before the output exists; all ranks agree.
  Setup st;
  int code = 0;
  std::string message;
  try {
    set_up(cfg, rank, ranks, mpi.node_rank(), st);
  } catch (const StopRequested& e) {
    code = static_cast<int>(ExitCode::kStopped);
    message = e.what();
  } catch (const UsageError& e) {
    code = static_cast<int>(ExitCode::kBadInput);
    message = e.what();
  } catch (const InputError& e) {
    code = static_cast<int>(ExitCode::kBadInput);
    message = e.what();
  } catch (const std::exception& e) {
    code = static_cast<int>(ExitCode::kInternal);
    message = std::string("internal error: ") + e.what();
  }
  int worst = 0, first = 0;
  const int mine = code != 0 ? rank : ranks;
  INFLLM_MPI_CHECK(MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  INFLLM_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (worst != 0) {
    if (rank == first) std::cerr << "infllm generate: " << message << "\n";
    return worst;
  }
  // From here on a stop is taken at a step boundary; blocking calls are restarted.
  install_stop_handlers(true);
  const model::LoadedModel& m = st.weights->model();
  if (rank == 0 && !cfg.quiet) {
    std::cerr << "infllm generate: " << st.documents << " requests, " << st.prompt_tokens
              << " prompt tokens; model " << m.path << " (" << m.config.num_layers << " layers, "
              << m.config.hidden_size << " hidden); " << ranks << " rank" << (ranks > 1 ? "s" : "")
              << " (" << mpi.node_size() << " on this node, sharing "
              << st.weights->bytes() / 1048576 << " MiB of weights), kv-policy "
              << kv_policy_name(cfg.engine.policy) << "; pool " << st.slots << " rBlocks of "
              << st.block_bytes << " bytes per rank; backend " << st.backend_line << "; "
              << cpu::threads() << " threads per rank"
              << (ranks > 1 ? (cfg.engine.fill_waits ? "; fill-waits on" : "; fill-waits off") : "")
              << "\n";
    if (cfg.resume) {
      std::cerr << "infllm generate: resuming " << cfg.output << ": " << st.earlier_ids.size()
                << " finished earlier, " << st.to_run.size() << " to run";
      if (st.sink->torn_bytes_dropped() > 0) {
        std::cerr << "; dropped a torn last line (" << st.sink->torn_bytes_dropped() << " bytes)";
      }
      std::cerr << "\n";
    }
  }

  // 2. The run. Any exception from here on aborts the whole job (exit 3).
  try {
    Backend& backend = *st.backend;
    model::Forward forward(m.config, m.weights, backend);
    EngineOptions options = cfg.engine;
    options.instance.pool_slots = st.slots;
    // NOTE: one rank has nothing to pool: the one instance never lends (the same as local).
    if (ranks == 1) options.policy = KvPolicy::kLocal;
    options.dgfm_budget_bytes = static_cast<std::int64_t>(cfg.dgfm_budget_mb * 1048576.0);
    options.instance.eos_ids = eos_ids(m, *st.tok);
    dist::Engine engine(MPI_COMM_WORLD, forward, &*st.tok, options);

    std::optional<io::ProgressReporter> progress;
    if (rank == 0 && !cfg.quiet) {
      progress.emplace(std::cerr, ::isatty(STDERR_FILENO) != 0, st.documents,
                       st.earlier_ids.size());
    }
    const long kill_after = env_number("INFLLM_TEST_KILL_AFTER");
    const long delay_rank = std::getenv("INFLLM_TEST_DELAY_RANK") != nullptr
                                ? env_number("INFLLM_TEST_DELAY_RANK")
                                : -1;
    const long step_delay_ms =
        delay_rank < 0 || delay_rank == rank ? env_number("INFLLM_TEST_STEP_DELAY_MS") : 0;
    std::size_t finished = 0;
    std::int64_t generated = 0;
    dist::EngineHooks hooks;
    hooks.stop = [] { return g_stop_signal.load() != 0; };
    hooks.on_result = [&](io::ResultRecord&& r) {
      ++finished;
      generated += static_cast<std::int64_t>(r.tokens.size());
      if (r.status != "done") ++st.not_done;
      st.by_status[r.status] = st.by_status.value(r.status, 0) + 1;
      st.sink->append(r);
      if (progress) progress->on_result();
      if (kill_after > 0 && finished == static_cast<std::size_t>(kill_after)) {
        st.sink->flush();
        std::raise(SIGKILL);
      }
    };
    std::int64_t prefill_total = 0, decode_total = 0;
    hooks.on_step = [&](const ClusterStep& cs) {
      if (!progress) return;
      prefill_total += cs.sum.prefill_tokens;
      decode_total += cs.sum.decode_tokens;
      progress->on_step(io::ProgressSample{prefill_total, decode_total, cs.sum.pool_used,
                                           cs.sum.pool_slots, cs.ledger_blocks});
    };
    const long fail_rank =
        std::getenv("INFLLM_TEST_FAIL_RANK") != nullptr ? env_number("INFLLM_TEST_FAIL_RANK") : -1;
    const long fail_step = env_number("INFLLM_TEST_FAIL_STEP");
    long steps_here = 0;
    hooks.cut_every_fill_step = env_number("INFLLM_TEST_CUT_FILLS") == 1;
    hooks.after_step = [&] {
      ++steps_here;
      if (rank == fail_rank && steps_here == fail_step) {
        throw InternalError("injected failure (INFLLM_TEST_FAIL_RANK/STEP)");
      }
      if (step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms));
    };
    const RunSummary sum = engine.run(st.requests, st.to_run, hooks);
    if (rank != 0) return sum.stopped ? static_cast<int>(ExitCode::kStopped) : 0;

    st.sink->set_tables(run_tables(sum));
    st.sink->close();
    if (progress) progress->finish();
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!cfg.metrics.empty()) {
      json steps = json::array();
      for (const auto& cs : sum.per_step) {
        json row = json::object();
        for_each_column(cs, [&](const char* name, const auto& v) { row[name] = v; });
        row["bytes"] = bytes_json(cs.sum);
        steps.push_back(std::move(row));
      }
      const json metrics = {
          {"requests", st.documents},
          {"requests_earlier", st.earlier_ids.size()},
          {"requests_by_status", st.by_status},
          {"stopped_by_signal", sum.stopped},
          {"prompt_tokens", st.prompt_tokens},
          {"generated_tokens", generated},
          {"prefill_tokens_computed", sum.prefill_tokens},
          {"decode_tokens", sum.decode_tokens},
          {"tokens_per_s",
           seconds > 0 ? double(sum.prefill_tokens + sum.decode_tokens) / seconds : 0.0},
          {"steps", sum.steps},
          {"fill_steps", sum.totals.fill_steps},
          {"fill_cuts", sum.totals.fill_cuts},
          {"preemptions", sum.preemptions},
          {"pool_slots", st.slots},
          {"pool_used_hwm", sum.totals.pool_used},
          {"loans_total", sum.loans_total},
          {"ledger_outstanding_end", sum.ledger_outstanding_end},
          {"ledger_max", sum.ledger_max},
          {"dgfm_moves", sum.dgfm_moves},
          {"bytes_moved", bytes_json(sum.totals)},
          {"time_split_s",
           {{"compute", sum.totals.compute_s},
            {"wait", sum.totals.wait_s},
            {"comm", sum.totals.comm_s}}},
          {"kv_policy", kv_policy_name(options.policy)},
          {"wall_s", seconds},
          {"ranks", ranks},
          {"per_step", std::move(steps)}};
      try {
        io::write_file(cfg.metrics, metrics.dump(2) + "\n");
      } catch (const OutputError& e) {
        // The output itself is complete and closed: only the summary is lost.
        std::cerr << "infllm generate: " << e.what() << " (the output " << cfg.output
                  << " is complete)\n";
        return static_cast<int>(ExitCode::kWriteFailed);
      }
    }
    if (sum.stopped) {
      if (!cfg.quiet) {
        const int sig = g_stop_signal.load();
        std::cerr << "infllm generate: stopped by "
                  << (sig == SIGUSR1   ? "SIGUSR1"
                      : sig == SIGTERM ? "SIGTERM"
                      : sig == SIGINT  ? "SIGINT"
                                       : "a signal on another rank")
                  << " after " << st.earlier_ids.size() + finished << "/" << st.documents
                  << " requests (output fsync'ed); run again with --resume to finish " << cfg.output
                  << "\n";
      }
      return static_cast<int>(ExitCode::kStopped);
    }
    if (!cfg.quiet) {
      std::cerr << "infllm generate: done: " << st.earlier_ids.size() + finished << " requests ("
                << st.by_status.dump() << "), " << generated << " tokens generated in " << seconds
                << " s; loans " << sum.loans_total << ", outstanding at the end "
                << sum.ledger_outstanding_end << "; output " << cfg.output << "\n";
    }
    return static_cast<int>(st.not_done == 0 ? ExitCode::kOk : ExitCode::kSomeNotDone);
  } catch (const OutputError& e) {
    // What was written before stays resumable; every rank ends with the same code.
    dist::abort_job(e.what(), ExitCode::kWriteFailed);
  } catch (const std::exception& e) {
    dist::abort_job(e.what());
  }
}

}  // namespace infllm::app
