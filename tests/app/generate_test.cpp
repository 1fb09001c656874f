// generate_test.cpp: `infllm generate` on one rank, run as users run it: a generated model in
// the Hugging Face layout, a JSONL or HDF5 input, the executable, and its output files. Also the
// job's life: a kill and --resume, a signal and exit 4, progress on stderr, and `infllm inspect`
// of inputs and outputs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using Result = infllm::testing::CommandResult;

Result infllm(const std::string& args) { return infllm::testing::run_infllm(args); }

class Generate : public ::testing::Test {
 protected:
  // A fresh directory per run: tests expect their output paths not to exist yet.
  static void SetUpTestSuite() {
    tmp_ = std::make_unique<infllm::testing::TempDir>("infllm-generate-test");
    const Result r =
        infllm("make-model --preset micro --seed 3 --out " + (tmp_->path() / "micro").string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() { tmp_.reset(); }
  static std::string path(const std::string& name) { return (tmp_->path() / name).string(); }
  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  static std::vector<json> read_jsonl(const std::string& p) {
    std::vector<json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  std::string model() const { return path("micro"); }
  static std::unique_ptr<infllm::testing::TempDir> tmp_;
};
std::unique_ptr<infllm::testing::TempDir> Generate::tmp_;

// id -> (status, tokens, text): what must agree between an interrupted-and-resumed run and an
// uninterrupted one. Fails the test on a duplicate id.
std::map<std::string, json> outcome(const std::vector<json>& records) {
  std::map<std::string, json> out;
  for (const auto& r : records) {
    const bool fresh = out.emplace(r["id"], json{r["status"], r["tokens"], r["text"]}).second;
    EXPECT_TRUE(fresh) << "duplicate id " << r["id"];
  }
  return out;
}

// Six requests of different lengths: enough for a kill after two to leave work behind.
std::string six_requests() {
  std::string text;
  for (int i = 0; i < 6; ++i) {
    text += "{\"id\": \"d" + std::to_string(i) + "\", \"tokens\": [" + std::to_string(5 + i) +
            ", 6, 7, 8], \"max_new_tokens\": " + std::to_string(12 + 3 * i) + "}\n";
  }
  return text;
}

// `infllm generate` started as a child process (for signals), its output in `log`.
pid_t spawn_generate(const std::string& args, const std::string& log, const std::string& env) {
  return infllm::testing::spawn_command(infllm::testing::infllm_env() + "env " + env + " " +
                                            infllm::testing::infllm_binary() + " " + args,
                                        log);
}

using infllm::testing::wait_exit;

// Whole lines (ending in a newline) in `p` now.
std::size_t whole_lines(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::size_t n = 0;
  for (char c; in.get(c);) n += c == '\n';
  return n;
}

const char* kInput =
    "{\"id\": \"text\", \"prompt\": \"It is a truth universally acknowledged\", "
    "\"max_new_tokens\": 5}\n"
    "{\"id\": \"ids\", \"tokens\": [5, 6, 7, 8], \"max_new_tokens\": 3}\n"
    "{\"id\": \"chat\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], "
    "\"max_new_tokens\": 4, \"temperature\": 0.8, \"seed\": 1}\n";

TEST_F(Generate, WritesOneLinePerRequest) {
  const auto in = write("in.jsonl", kInput);
  const auto out = path("out.jsonl");
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          out + " --metrics " + path("m.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto lines = read_jsonl(out);
  ASSERT_EQ(lines.size(), 3u);
  std::set<std::string> ids;
  for (const auto& l : lines) {
    ids.insert(l["id"]);
    EXPECT_EQ(l["status"], "done") << l.dump();
    EXPECT_GT(l["generated_tokens"].get<int>(), 0);
    EXPECT_EQ(l["tokens"].size(), l["generated_tokens"].get<std::size_t>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"text", "ids", "chat"}));
  std::ifstream m(path("m.json"));
  const json metrics = json::parse(m);
  EXPECT_EQ(metrics["requests"], 3);
  EXPECT_EQ(metrics["requests_by_status"]["done"], 3);
}

// A metrics file that cannot be written (here /dev/full: ENOSPC) is exit 5 naming it and the OS
// error; the output itself is complete, and /dev/full is neither replaced nor joined by a
// temporary file.
TEST_F(Generate, UnwritableMetricsExitFiveAndTheOutputIsComplete) {
  const auto in = write("full.jsonl", kInput);
  const auto out = path("full.out.jsonl");
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          out + " --metrics /dev/full");
  EXPECT_EQ(r.code, 5) << r.out;
  EXPECT_NE(r.out.find("/dev/full: write failed: No space left on device"), std::string::npos)
      << r.out;
  EXPECT_EQ(read_jsonl(out).size(), 3u);
  EXPECT_FALSE(fs::exists("/dev/full.tmp"));
  EXPECT_TRUE(fs::is_character_file("/dev/full"));
}

// An HDF5 output that cannot be written (its temporary file is /dev/full) is exit 5 naming the
// output and the OS error; no temporary file stays, and --resume makes the file from the
// journal once the obstacle is gone.
TEST_F(Generate, UnwritableHdf5OutputExitFiveAndResumes) {
  const auto in = write("h5full.jsonl", kInput);
  const auto out = path("h5full.out.h5");
  fs::create_symlink("/dev/full", out + ".tmp");
  const std::string cmd =
      "generate --quiet --model " + model() + " --input " + in + " --output " + out;
  const Result r = infllm(cmd);
  EXPECT_EQ(r.code, 5) << r.out;
  EXPECT_NE(r.out.find(out + ": write failed: No space left on device"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(fs::symlink_status(out + ".tmp")));
  EXPECT_FALSE(fs::exists(out));
  const Result resumed = infllm(cmd + " --resume");
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_TRUE(fs::exists(out));
}

TEST_F(Generate, GreedyRunsAreReproducible) {
  const auto in = write("repro.jsonl", kInput);
  ASSERT_EQ(infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                   path("r1.jsonl"))
                .code,
            0);
  // A different batch shape and chunking: same greedy tokens.
  ASSERT_EQ(infllm("generate --quiet --max-batch-tokens 3 --max-num-seqs 1 --model " + model() +
                   " --input " + in + " --output " + path("r2.jsonl"))
                .code,
            0);
  std::map<std::string, json> a, b;
  for (const auto& l : read_jsonl(path("r1.jsonl"))) a[l["id"]] = l["tokens"];
  for (const auto& l : read_jsonl(path("r2.jsonl"))) b[l["id"]] = l["tokens"];
  EXPECT_EQ(a, b);
}

TEST_F(Generate, HdfOutputHasTheResults) {
  const auto in = write("h.jsonl", kInput);
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          path("out.h5"));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string text =
      infllm::testing::run_command("h5dump -d /results/status " + path("out.h5")).out;
  EXPECT_NE(text.find("\"done\", \"done\", \"done\""), std::string::npos) << text;
}

TEST_F(Generate, RequestTooLargeForThePoolIsRejectedExitOne) {
  const auto in = write("big.jsonl",
                        "{\"id\": \"small\", \"tokens\": [1, 2], \"max_new_tokens\": 2}\n"
                        "{\"id\": \"big\", \"tokens\": [1, 2], \"max_new_tokens\": 5000}\n");
  // micro: 2 layers x 2 kv heads x 32 dims x 16 tokens x 2 x 4 bytes = 16 KiB per rBlock;
  // 1 MiB holds 64 blocks = 1024 tokens.
  const Result r = infllm("generate --quiet --kv-pool-mb 1 --model " + model() + " --input " + in +
                          " --output " + path("big.out.jsonl"));
  EXPECT_EQ(r.code, 1) << r.out;
  std::map<std::string, json> by_id;
  for (const auto& l : read_jsonl(path("big.out.jsonl"))) by_id[l["id"]] = l;
  EXPECT_EQ(by_id["small"]["status"], "done");
  EXPECT_EQ(by_id["big"]["status"], "rejected");
  EXPECT_EQ(by_id["big"]["reason"], "kv_capacity");
}

TEST_F(Generate, BadInputExitsTwoAndWritesNothing) {
  const auto in = write("bad.jsonl", "{\"id\": \"a\", \"tokens\": [1, 99999]}\n");
  const auto out = path("never.jsonl");
  const Result r = infllm("generate --model " + model() + " --input " + in + " --output " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("bad.jsonl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outside the vocabulary"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Generate, MissingModelExitsTwoNamingIt) {
  const auto in = write("ok.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\n");
  const Result r = infllm("generate --model " + path("nope") + " --input " + in + " --output " +
                          path("o.jsonl"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find(path("nope")), std::string::npos) << r.out;
}

TEST_F(Generate, ExistingOutputIsRefused) {
  const auto in = write("e.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\n");
  write("exists.jsonl", "{\"id\": \"old\"}\n");
  const Result r = infllm("generate --model " + model() + " --input " + in + " --output " +
                          path("exists.jsonl"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("output exists"), std::string::npos) << r.out;
  EXPECT_EQ(read_jsonl(path("exists.jsonl")).size(), 1u);
}

TEST_F(Generate, KilledRunResumesToTheUninterruptedOutput) {
  const auto in = write("kill.jsonl", six_requests());
  const std::string common = "generate --quiet --model " + model() + " --input " + in;
  ASSERT_EQ(infllm(common + " --output " + path("kill.full.jsonl")).code, 0);
  const auto out = path("kill.out.jsonl");
  // One request at a time, SIGKILL right after the second record is fsync'ed.
  const Result killed = infllm::testing::run_command(
      infllm::testing::infllm_env() + "INFLLM_TEST_KILL_AFTER=2 " +
      infllm::testing::infllm_binary() + " " + common + " --max-num-seqs 1 --output " + out);
  EXPECT_NE(killed.code, 0) << killed.out;
  ASSERT_EQ(read_jsonl(out).size(), 2u);
  const Result resumed = infllm(common + " --resume --output " + out);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  const auto records = read_jsonl(out);
  EXPECT_EQ(records.size(), 6u);
  EXPECT_EQ(outcome(records), outcome(read_jsonl(path("kill.full.jsonl"))));
}

TEST_F(Generate, KilledHdfRunResumesFromItsJournal) {
  const auto in = write("killh.jsonl", six_requests());
  const std::string common = "generate --quiet --model " + model() + " --input " + in;
  ASSERT_EQ(infllm(common + " --output " + path("killh.full.jsonl")).code, 0);
  const auto out = path("killh.out.h5");
  const Result killed = infllm::testing::run_command(
      infllm::testing::infllm_env() + "INFLLM_TEST_KILL_AFTER=3 " +
      infllm::testing::infllm_binary() + " " + common + " --max-num-seqs 1 --output " + out);
  EXPECT_NE(killed.code, 0) << killed.out;
  EXPECT_FALSE(fs::exists(out)) << "the HDF5 file is built only when the run ends";
  ASSERT_EQ(read_jsonl(out + ".journal").size(), 3u);
  const Result resumed = infllm(common + " --resume --output " + out);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(outcome(read_jsonl(out + ".journal")), outcome(read_jsonl(path("killh.full.jsonl"))));
  // The HDF5 file holds the old and the new records, and is complete.
  const std::string dump =
      infllm::testing::run_command("h5dump -d /results/id -a /complete " + out).out;
  EXPECT_NE(dump.find("ATTRIBUTE \"complete\""), std::string::npos) << dump;
  for (int i = 0; i < 6; ++i) {
    EXPECT_NE(dump.find("\"d" + std::to_string(i) + "\""), std::string::npos) << dump;
  }
}

TEST_F(Generate, ResumeDropsATornLastLine) {
  const auto in = write("torn.jsonl", six_requests());
  const std::string common = "generate --quiet --model " + model() + " --input " + in;
  const auto full = path("torn.full.jsonl");
  ASSERT_EQ(infllm(common + " --output " + full).code, 0);
  // Three whole records and half of the fourth, as a kill mid-write leaves them.
  const auto out = path("torn.out.jsonl");
  {
    std::ifstream src(full);
    std::ofstream dst(out);
    std::string line;
    for (int i = 0; i < 3 && std::getline(src, line); ++i) dst << line << "\n";
    std::getline(src, line);
    dst << line.substr(0, line.size() / 2);
  }
  fs::copy_file(full + ".meta.json", out + ".meta.json", fs::copy_options::overwrite_existing);
  const Result resumed = infllm(common + " --resume --output " + out);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  const auto records = read_jsonl(out);  // throws if any line is not whole JSON
  EXPECT_EQ(records.size(), 6u);
  EXPECT_EQ(outcome(records), outcome(read_jsonl(full)));
}

TEST_F(Generate, ResumeWithAnotherModelExitsTwoNamingIt) {
  ASSERT_EQ(infllm("make-model --preset micro --seed 4 --out " + path("micro4")).code, 0);
  const auto in = write("other.jsonl", six_requests());
  const auto out = path("other.out.jsonl");
  ASSERT_EQ(
      infllm("generate --quiet --model " + model() + " --input " + in + " --output " + out).code,
      0);
  const auto before = read_jsonl(out);
  const Result r = infllm("generate --quiet --resume --model " + path("micro4") + " --input " + in +
                          " --output " + out);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find(out), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("different model"), std::string::npos) << r.out;
  EXPECT_EQ(read_jsonl(out), before) << "a refused output is untouched";
}

TEST_F(Generate, ResumeWithAnotherOutputOptionExitsTwoNamingIt) {
  const auto in = write("opt.jsonl", six_requests());
  const auto out = path("opt.out.jsonl");
  const std::string common = "generate --quiet --model " + model() + " --input " + in;
  ASSERT_EQ(infllm(common + " --output " + out).code, 0);
  const Result r = infllm(common + " --resume --seed 9 --output " + out);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--seed"), std::string::npos) << r.out;
  // Batching does not change outputs, so it may differ on resume.
  EXPECT_EQ(infllm(common + " --resume --max-num-seqs 2 --output " + out).code, 0);
}

TEST_F(Generate, ResumeOnAMissingOutputStartsFresh) {
  const auto in = write("fresh.jsonl", six_requests());
  const auto out = path("fresh.out.jsonl");
  fs::remove(out);
  const Result r = infllm("generate --quiet --resume --model " + model() + " --input " + in +
                          " --output " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_jsonl(out).size(), 6u);
  EXPECT_TRUE(fs::exists(out + ".meta.json"));
}

TEST_F(Generate, SignalStopsAtAStepBoundaryExitFourAndResumeFinishes) {
  std::string text;
  for (int i = 0; i < 20; ++i) {
    text += "{\"id\": \"s" + std::to_string(i) + "\", \"tokens\": [" + std::to_string(5 + i) +
            ", 9], \"max_new_tokens\": 64}\n";
  }
  const auto in = write("sig.jsonl", text);
  const auto out = path("sig.out.jsonl");
  fs::remove(out);
  const std::string common =
      "generate --quiet --ignore-eos --model " + model() + " --input " + in + " --output " + out;
  // One request at a time and 10 ms per step: >= 12 s in all, so the signal lands mid-run.
  const pid_t pid =
      spawn_generate(common + " --max-num-seqs 1", path("sig.log"), "INFLLM_TEST_STEP_DELAY_MS=10");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (whole_lines(out) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(whole_lines(out), 0u) << "no record appeared";
  ASSERT_EQ(kill(pid, SIGUSR1), 0);
  const auto code = wait_exit(pid, 10.0);
  ASSERT_TRUE(code.has_value()) << "no exit within 10 s of SIGUSR1";
  EXPECT_EQ(*code, 4);
  const auto stopped = read_jsonl(out);  // every line whole JSON
  EXPECT_LT(stopped.size(), 20u);
  const Result resumed = infllm(common + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  const auto all = outcome(read_jsonl(out));
  EXPECT_EQ(all.size(), 20u);
}

// An input from a FIFO that no writer has opened blocks in open(): SIGTERM, SIGUSR1 and SIGINT
// each end the job with exit 4 and nothing written (before, the signals were ignored forever).
// With a writer, the FIFO is read once, and the fingerprint holds the same input hash as the
// same bytes in a regular file.
TEST_F(Generate, SignalWhileBlockedOnAFifoInputStopsCleanly) {
  const auto fifo = path("fifo.jsonl");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const int sig : {SIGTERM, SIGUSR1, SIGINT}) {
    const auto out = path("fifo-" + std::to_string(sig) + ".jsonl");
    const pid_t pid = spawn_generate(
        "generate --quiet --model " + model() + " --input " + fifo + " --output " + out,
        path("fifo.log"), "");
    std::this_thread::sleep_for(std::chrono::seconds(2));  // loading the model, then blocked
    ASSERT_EQ(kill(pid, sig), 0);
    const auto code = wait_exit(pid, 20.0);
    ASSERT_TRUE(code.has_value()) << "no exit within 20 s of signal " << sig;
    EXPECT_EQ(*code, 4) << "signal " << sig;
    EXPECT_FALSE(fs::exists(out)) << "signal " << sig;
    EXPECT_FALSE(fs::exists(out + ".meta.json")) << "signal " << sig;
  }
  const auto regular = write("fifo-regular.jsonl", kInput);
  ASSERT_EQ(infllm("generate --quiet --model " + model() + " --input " + regular + " --output " +
                   path("fifo-regular.out.jsonl"))
                .code,
            0);
  std::thread writer([&] { std::ofstream(fifo) << kInput; });
  const Result r = infllm("generate --quiet --model " + model() + " --input " + fifo +
                          " --output " + path("fifo-ok.out.jsonl"));
  writer.join();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_jsonl(path("fifo-ok.out.jsonl")).size(), 3u);
  const auto hash = [&](const std::string& out) {
    std::ifstream in(out + ".meta.json");
    return json::parse(in).at("input").at("hash").get<std::string>();
  };
  EXPECT_EQ(hash(path("fifo-ok.out.jsonl")), hash(path("fifo-regular.out.jsonl")));
}

// --overwrite with the input as the output replaced the input by the results; the same file
// through a link too. Refused by name, and the input is untouched.
TEST_F(Generate, OutputThatIsTheInputIsRefusedEvenWithOverwrite) {
  const auto in = write("self.jsonl", kInput);
  const auto link = path("self-link.jsonl");
  fs::create_symlink(in, link);
  for (const auto& out : {in, link}) {
    for (const char* flag : {" --overwrite", " --resume", ""}) {
      const Result r = infllm("generate --quiet --model " + model() + " --input " + in +
                              " --output " + out + flag);
      EXPECT_EQ(r.code, 2) << out << flag << ": " << r.out;
      EXPECT_NE(r.out.find("option --output: '" + out + "' is the input file"), std::string::npos)
          << r.out;
    }
  }
  std::ifstream f(in);
  const std::string now((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(now, kInput);
  EXPECT_FALSE(fs::exists(in + ".meta.json"));
}

// min_new_tokens above max_new_tokens is refused in a record as on the command line, on the
// values the request would run with (the record's or the command line's).
TEST_F(Generate, MinAboveMaxNewTokensInARecordIsRefused) {
  const auto in = write("minmax.jsonl",
                        "{\"id\": \"a\", \"tokens\": [5, 6], "
                        "\"min_new_tokens\": 9}\n");
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          path("minmax.out.jsonl") + " --max-new-tokens 4");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("field min_new_tokens: 9 exceeds max_new_tokens 4"), std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(path("minmax.out.jsonl")));
}

TEST_F(Generate, QuietPrintsNothing) {
  const auto in = write("q.jsonl", kInput);
  const Result r = infllm("generate --quiet --model " + model() + " --input " + in + " --output " +
                          path("q.out.jsonl"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "");
}

TEST_F(Generate, ProgressOffATerminalEndsWithASummaryLine) {
  const auto in = write("p.jsonl", kInput);
  const Result r =
      infllm("generate --model " + model() + " --input " + in + " --output " + path("p.out.jsonl"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << "no live line off a terminal";
  EXPECT_NE(r.out.find("infllm generate: done: 3 requests"), std::string::npos) << r.out;
}

TEST_F(Generate, InspectDescribesAnInput) {
  const auto in = write("ins.jsonl", kInput);
  const Result r = infllm("inspect " + in);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("documents:      3 (messages 1, prompt 1, tokens 1)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("prompt tokens:  n 1, min 4"), std::string::npos) << r.out;
}

// Found by fuzz_hdf5_input: a corrupt local heap makes libhdf5 1.10 memcpy (size_t)-1 bytes.
// The file is read in a child process, so the crash is one error naming the file.
TEST_F(Generate, InspectOfAFileThatCrashesLibHdf5IsOneError) {
  const std::string in =
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/fuzz/hdf5_libhdf5_local_heap_crash.h5";
  const Result r = infllm("inspect " + in);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find(in + ": libhdf5 crashed reading the file"), std::string::npos) << r.out;
}

TEST_F(Generate, InspectDescribesAFinishedOutput) {
  const auto in = write("ino.jsonl", kInput);
  const auto out = path("ino.out.jsonl");
  ASSERT_EQ(
      infllm("generate --quiet --model " + model() + " --input " + in + " --output " + out).code,
      0);
  const Result r = infllm("inspect " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("records:        3 (done 3)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fingerprint:    " + out + ".meta.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("complete:       yes (3/3 requests)"), std::string::npos) << r.out;
}

TEST_F(Generate, InspectOfAKilledHdfOutputReadsItsJournal) {
  const auto in = write("ink.jsonl", six_requests());
  const auto out = path("ink.out.h5");
  const Result killed = infllm::testing::run_command(
      infllm::testing::infllm_env() + "INFLLM_TEST_KILL_AFTER=2 " +
      infllm::testing::infllm_binary() + " generate --quiet " + "--max-num-seqs 1 --model " +
      model() + " --input " + in + " --output " + out);
  EXPECT_NE(killed.code, 0) << killed.out;
  const Result r = infllm("inspect " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("records:        2 (done 2)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("complete:       no (2/6 requests"), std::string::npos) << r.out;
}

TEST_F(Generate, InspectReportsATornLastLineAndLeavesIt) {
  const auto in = write("int.jsonl", six_requests());
  const auto out = path("int.out.jsonl");
  ASSERT_EQ(
      infllm("generate --quiet --model " + model() + " --input " + in + " --output " + out).code,
      0);
  const std::string torn = "{\"id\": \"d9\"";
  std::ofstream(out, std::ios::app) << torn;
  const Result r = infllm("inspect " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("torn last line: " + std::to_string(torn.size()) + " bytes"),
            std::string::npos)
      << r.out;
  std::ifstream back(out, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(back)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.substr(bytes.size() - torn.size()), torn) << "inspect does not truncate";
}

}  // namespace
