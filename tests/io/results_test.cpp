// results_test.cpp: result sinks: one JSONL line per record, existing outputs refused, HDF5
// built whole from its journal and readable by an independent reader (h5dump).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "io/fingerprint.hpp"
#include "io/hdf5_results.hpp"
#include "io/results.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace infllm::io {
namespace {

namespace fs = std::filesystem;

// One folder per test process, removed when the process ends (support/temp_dir.hpp).
fs::path temp_dir() {
  static const infllm::testing::TempDir dir("infllm-results-test");
  return dir.path();
}

std::vector<ResultRecord> sample_records() {
  ResultRecord a;
  a.id = "doc-1";
  a.status = "done";
  a.finish_reason = "length";
  a.tokens = {5, 6, 7};
  a.text = "Mr. Darcy \xe2\x80\x94 said";
  a.prompt_tokens = 1200;
  a.top_logprobs = {{{5, -0.1}, {9, -2.5}}, {{6, -0.2}}, {{7, -0.3}}};
  ResultRecord b;
  b.id = "doc-2";
  b.status = "rejected";
  b.reason = "kv_capacity";
  return {a, b};
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(JsonlSink, OneObjectPerRecordRoundTrips) {
  const auto path = (temp_dir() / "out.jsonl").string();
  fs::remove(path);
  auto sink = open_result_sink(path, {}, nlohmann::json::object());
  for (const auto& r : sample_records()) sink->append(r);
  sink->close();
  const auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 2u);
  const auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["generated_tokens"], 3);
  EXPECT_EQ(j["top_logprobs"][0][1]["token"], 9);
  const ResultRecord back = record_from_json(j, path, "line 1");
  EXPECT_EQ(back.text, sample_records()[0].text);
  EXPECT_EQ(back.top_logprobs[0][1].second, -2.5);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["reason"], "kv_capacity");
}

TEST(JsonlSink, ExistingOutputIsRefusedUnlessOverwrite) {
  const auto path = (temp_dir() / "exists.jsonl").string();
  std::ofstream(path) << "{\"id\": \"old\"}\n";
  try {
    open_result_sink(path, {}, {});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("output exists"), std::string::npos) << e.what();
  }
  EXPECT_EQ(lines_of(path).size(), 1u) << "the refused output is untouched";
  auto sink = open_result_sink(path, {.overwrite = true}, {});
  sink->close();
  EXPECT_TRUE(lines_of(path).empty());
}

TEST(JsonlSink, UnwritableOrMissingDirectoryIsNamed) {
  try {
    open_result_sink("/nonexistent/dir/out.jsonl", {}, {});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir"), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_result_sink((temp_dir() / "out.csv").string(), {}, {}), InputError);
}

TEST(Hdf5Sink, BuildsACompleteFileFromTheJournal) {
  const auto path = (temp_dir() / "out.h5").string();
  fs::remove(path);
  fs::remove(path + ".journal");
  auto sink = open_result_sink(path, {}, {{"model", "micro"}, {"ranks", 4}});
  for (const auto& r : sample_records()) sink->append(r);
  EXPECT_FALSE(fs::exists(path)) << "the HDF5 file appears only when the run ends";
  EXPECT_EQ(lines_of(path + ".journal").size(), 2u);
  sink->close();
  const auto back = read_hdf5_results(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].tokens, (std::vector<std::int32_t>{5, 6, 7}));
  EXPECT_EQ(back[0].text, sample_records()[0].text);
  EXPECT_EQ(back[1].reason, "kv_capacity");

  // An independent reader: Debian's h5dump sees the schema and the values.
  const std::string dump =
      infllm::testing::run_command(
          "h5dump -d /results/id -d /results/tokens -a /complete -a /run " + path)
          .out;
  EXPECT_NE(dump.find("\"doc-2\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("(5, 6, 7)"), std::string::npos) << dump;
  EXPECT_NE(dump.find("ATTRIBUTE \"complete\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"ranks\":4"), std::string::npos) << dump;
}

// A write that fails part-way (here a file size limit: EFBIG) is an OutputError naming the
// output and the OS error; no temporary file stays, the journal keeps every record, and once the
// obstacle is gone the same sink's records make the file.
TEST(Hdf5Sink, AFailedWriteNamesTheOutputAndLeavesNothingHalfWritten) {
  const auto path = (temp_dir() / "limited.h5").string();
  fs::remove(path);
  fs::remove(path + ".journal");
  std::vector<ResultRecord> many;
  for (int i = 0; i < 400; ++i) {
    ResultRecord r = sample_records()[0];
    r.id = "doc-" + std::to_string(i);
    r.text.assign(200, 'x');
    many.push_back(r);
  }
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto previous = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
  struct rlimit small = old;
  small.rlim_cur = 16 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    write_hdf5_results(path, many, {{"model", "micro"}}, nullptr);
  } catch (const OutputError& e) {
    threw = true;
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find("too large"), std::string::npos) << e.what();
  }
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, previous);
  EXPECT_TRUE(threw);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  write_hdf5_results(path, many, {{"model", "micro"}}, nullptr);
  EXPECT_EQ(read_hdf5_results(path).size(), 400u);
}

// The temporary file is /dev/full: OutputError naming the output, and the temporary name goes.
TEST(Hdf5Sink, AnUncreatableFileIsAnOutputError) {
  const auto path = (temp_dir() / "full.h5").string();
  fs::remove(path);
  fs::remove(path + ".tmp");
  fs::create_symlink("/dev/full", path + ".tmp");
  EXPECT_THROW(write_hdf5_results(path, sample_records(), {}, nullptr), OutputError);
  EXPECT_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
  EXPECT_FALSE(fs::exists(path));
}

TEST(Hdf5Sink, StaleJournalIsRefused) {
  const auto path = (temp_dir() / "stale.h5").string();
  std::ofstream(path + ".journal") << "{}\n";
  EXPECT_THROW(open_result_sink(path, {}, {}), InputError);
}

TEST(ResultLog, TornLastLineIsCutBackToTheLastNewline) {
  const auto path = (temp_dir() / "torn.jsonl").string();
  const std::string torn = "{\"id\": \"doc-2\", \"sta";
  std::ofstream(path) << to_json(sample_records()[0]).dump() << "\n" << torn;
  const ResultLog peek = read_result_log(path, /*truncate_torn=*/false);
  EXPECT_EQ(peek.records.size(), 1u);
  EXPECT_EQ(peek.torn_bytes, torn.size());
  EXPECT_EQ(lines_of(path).size(), 2u) << "peeking leaves the file alone";
  const ResultLog cut = read_result_log(path, /*truncate_torn=*/true);
  EXPECT_EQ(cut.torn_bytes, torn.size());
  EXPECT_EQ(lines_of(path).size(), 1u);
  EXPECT_EQ(read_result_log(path, true).torn_bytes, 0u);
}

TEST(ResultLog, DuplicateIdNamesTheLine) {
  const auto path = (temp_dir() / "dup.jsonl").string();
  const std::string line = to_json(sample_records()[0]).dump();
  std::ofstream(path) << line << "\n" << line << "\n";
  try {
    read_result_log(path, false);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), "line 2");
  }
}

// Found by fuzz_journal: a token written as a float beyond int (7.7e24) was converted to int
// unchecked (UBSan: undefined behaviour). Integers of a record are checked: type and range.
TEST(ResultLog, TokensThatAreNotInt32AreRefusedNamingTheField) {
  const auto where_of = [](const std::string& name, const std::string& line) {
    const auto path = (temp_dir() / name).string();
    std::ofstream(path) << line << "\n";
    try {
      read_result_log(path, false);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = R"({"id":"a","status":"done",)";
  std::string msg = where_of("float.jsonl", head + R"("tokens":[7777777777777777777777777,8]})");
  EXPECT_NE(msg.find("line 1: tokens is not an integer"), std::string::npos) << msg;
  msg = where_of("big.jsonl", head + R"("tokens":[1,4294967296]})");
  EXPECT_NE(msg.find("tokens 4294967296 is outside [0, 2147483647]"), std::string::npos) << msg;
  msg = where_of("negative.jsonl", head + R"("tokens":[-1]})");
  EXPECT_NE(msg.find("tokens -1 is outside"), std::string::npos) << msg;
  msg = where_of("preempt.jsonl", head + R"("tokens":[1],"preemptions":1e300})");
  EXPECT_NE(msg.find("preemptions is not an integer"), std::string::npos) << msg;
}

TEST(JsonlSink, ResumeAppendsAfterTheEarlierRecords) {
  const auto path = (temp_dir() / "resume.jsonl").string();
  fs::remove(path);
  const nlohmann::json fp = {
      {"model", {{"identity", "m"}}}, {"input", {{"hash", "i"}}}, {"options", {{"seed", 0}}}};
  auto first = open_result_sink(path, {}, {}, &fp);
  first->append(sample_records()[0]);
  first->close();
  auto second = open_result_sink(path, {.resume = true}, {}, &fp);
  ASSERT_EQ(second->earlier().size(), 1u);
  EXPECT_EQ(second->earlier()[0].id, "doc-1");
  second->append(sample_records()[1]);
  second->close();
  EXPECT_EQ(lines_of(path).size(), 2u);
}

TEST(JsonlSink, ResumeRefusesAnotherFingerprintAndTouchesNothing) {
  const auto path = (temp_dir() / "refuse.jsonl").string();
  fs::remove(path);
  const nlohmann::json fp = {
      {"model", {{"identity", "m"}}}, {"input", {{"hash", "i"}}}, {"options", {{"seed", 0}}}};
  auto first = open_result_sink(path, {}, {}, &fp);
  first->append(sample_records()[0]);
  first->close();
  std::ofstream(path, std::ios::app) << "{\"torn";
  nlohmann::json other = fp;
  other["options"]["seed"] = 1;
  EXPECT_THROW(open_result_sink(path, {.resume = true}, {}, &other), InputError);
  std::ifstream in(path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(bytes.find("{\"torn"), std::string::npos) << "refused before any truncation";
}

TEST(JsonlSink, ResumeWithoutAFingerprintFileIsRefused) {
  const auto path = (temp_dir() / "nometa.jsonl").string();
  std::ofstream(path) << to_json(sample_records()[0]).dump() << "\n";
  fs::remove(meta_path(path));
  const nlohmann::json fp = {{"options", nlohmann::json::object()}};
  EXPECT_THROW(open_result_sink(path, {.resume = true}, {}, &fp), InputError);
}

TEST(Hdf5Sink, ResumeRebuildsTheFileWithOldAndNewRecords) {
  const auto path = (temp_dir() / "resume.h5").string();
  fs::remove(path);
  fs::remove(path + ".journal");
  auto first = open_result_sink(path, {}, {});
  first->append(sample_records()[0]);
  first->flush();
  first.reset();  // a kill: the journal has one record, the HDF5 file was never built
  EXPECT_FALSE(fs::exists(path));
  auto second = open_result_sink(path, {.resume = true}, {});
  EXPECT_EQ(second->earlier().size(), 1u);
  second->append(sample_records()[1]);
  second->close();
  const auto back = read_hdf5_results(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].id, "doc-1");
  EXPECT_EQ(back[1].id, "doc-2");
}

}  // namespace
}  // namespace infllm::io
