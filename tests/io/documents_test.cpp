// documents_test.cpp: JSONL and HDF5 inputs: good records parse, and every bad input gives one
// InputError that names the file, the record or field, and the problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/errors.hpp"
#include "io/documents.hpp"
#include "io/hdf5_file.hpp"
#include "support/temp_dir.hpp"

namespace infllm::io {
namespace {

namespace fs = std::filesystem;

// One folder per test process, removed when the process ends (support/temp_dir.hpp).
fs::path temp_dir() {
  static const infllm::testing::TempDir dir("infllm-documents-test");
  return dir.path();
}

std::string write_text(const std::string& name, const std::string& text) {
  const auto path = (temp_dir() / name).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The InputError message for reading `path`, or "" if it parsed.
std::string error_of(const std::string& path, std::int64_t vocab = 0) {
  try {
    read_documents(path, ReadOptions{vocab});
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), path);
    return e.what();
  }
  return "";
}

// Asserts the error names every one of `parts`.
void expect_names(const std::string& message, std::initializer_list<const char*> parts) {
  ASSERT_FALSE(message.empty()) << "no error";
  for (const char* p : parts) EXPECT_NE(message.find(p), std::string::npos) << message;
}

TEST(Jsonl, ReadsPromptTokensAndMessages) {
  const auto path = write_text("good.jsonl",
                               "{\"id\": \"a\", \"prompt\": \"Hello\", \"max_new_tokens\": 5}\n"
                               "\n"
                               "{\"id\": 7, \"tokens\": [1, 2, 3], \"temperature\": 0.7, "
                               "\"stop\": \"END\"}\n"
                               "{\"id\": \"c\", \"messages\": [{\"role\": \"user\", "
                               "\"content\": \"hi\"}], \"seed\": 9}\n");
  const auto docs = read_documents(path);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(*docs[0].prompt, "Hello");
  EXPECT_EQ(*docs[0].max_new_tokens, 5);
  EXPECT_EQ(docs[1].id, "7");
  EXPECT_EQ(docs[1].tokens->size(), 3u);
  EXPECT_DOUBLE_EQ(*docs[1].overrides.temperature, 0.7);
  EXPECT_EQ(docs[1].overrides.stop->front(), "END");
  EXPECT_EQ((*docs[2].messages)[0].content, "hi");
  EXPECT_EQ(*docs[2].overrides.seed, 9u);
}

TEST(Jsonl, MissingFile) { expect_names(error_of("/nonexistent/in.jsonl"), {"no such file"}); }

TEST(Jsonl, UnknownExtension) {
  expect_names(error_of(write_text("in.txt", "{}")), {"unknown format", ".txt"});
}

TEST(Jsonl, Directory) {
  fs::create_directories(temp_dir() / "dir.jsonl");
  expect_names(error_of((temp_dir() / "dir.jsonl").string()), {"is a directory"});
}

TEST(Jsonl, NotJson) {
  expect_names(error_of(write_text("bad.jsonl", "{\"id\": \"a\", \"prompt\": \"x\"}\nnot json\n")),
               {"line 2", "not JSON"});
}

// A key given twice would otherwise silently take its last value; a number beyond a double's
// range was an internal error naming no file.
TEST(Jsonl, DuplicateKeysAndHugeNumbersAreNamed) {
  expect_names(error_of(write_text("dup.jsonl",
                                   "{\"id\": \"a\", \"prompt\": \"x\", "
                                   "\"max_new_tokens\": 4, \"max_new_tokens\": 9}\n")),
               {"line 1", "key max_new_tokens", "appears twice"});
  expect_names(error_of(write_text("dupmsg.jsonl",
                                   "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", "
                                   "\"content\": \"x\", \"content\": \"y\"}]}\n")),
               {"line 1", "key content", "appears twice"});
  expect_names(error_of(write_text("huge.jsonl",
                                   "{\"id\": \"a\", \"prompt\": \"x\", \"temperature\": 1e999}\n")),
               {"line 1", "outside the range of a double"});
}

// Reading is a stream bounded by the record limit: a line over it is refused as soon as it
// passes the limit, and an input that never ends a line (/dev/zero) is refused, not read forever.
TEST(Jsonl, RecordLongerThanTheLimitIsRefused) {
  const std::int64_t limit = 1 << 20;
  const std::string big = "{\"id\": \"a\", \"prompt\": \"" + std::string(limit, 'x') + "\"}\n";
  const auto path = write_text("long.jsonl", "{\"id\": \"s\", \"prompt\": \"x\"}\n" + big);
  try {
    read_documents(path, ReadOptions{0, limit});
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    expect_names(e.what(), {"line 2", "longer than 1 MiB", "--max-record-mb"});
  }
  EXPECT_EQ(read_documents(path, ReadOptions{0, 2 * limit}).size(), 2u);
  const fs::path zero = temp_dir() / "zero.jsonl";
  fs::create_symlink("/dev/zero", zero);
  EXPECT_THROW(read_documents(zero.string(), ReadOptions{0, limit}), InputError);
}

TEST(Jsonl, EmptyStopStringAndUnknownRolesAreRefused) {
  expect_names(
      error_of(write_text("stop.jsonl", "{\"id\": \"a\", \"prompt\": \"x\", \"stop\": \"\"}\n")),
      {"line 1", "stop", "non-empty"});
  expect_names(error_of(write_text("role.jsonl",
                                   "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", "
                                   "\"content\": \"x\"}, {\"role\": \"wizard\", \"content\": "
                                   "\"y\"}]}\n")),
               {"line 1", "messages[1].role", "'wizard' is not a chat role"});
}

TEST(Jsonl, LineNotAnObject) {
  expect_names(error_of(write_text("arr.jsonl", "[1, 2]\n")), {"line 1", "not a JSON object"});
}

TEST(Jsonl, MissingId) {
  expect_names(error_of(write_text("noid.jsonl", "{\"prompt\": \"x\"}\n")),
               {"line 1", "id", "missing"});
}

TEST(Jsonl, MissingPrompt) {
  expect_names(error_of(write_text("noprompt.jsonl", "{\"id\": \"q\"}\n")),
               {"line 1", "id q", "prompt", "missing"});
}

TEST(Jsonl, EmptyPrompt) {
  expect_names(error_of(write_text("empty.jsonl", "{\"id\": \"q\", \"prompt\": \"\"}\n")),
               {"id q", "field prompt", "empty prompt"});
  expect_names(error_of(write_text("emptytok.jsonl", "{\"id\": \"q\", \"tokens\": []}\n")),
               {"field tokens", "empty prompt"});
}

TEST(Jsonl, TwoPromptKinds) {
  expect_names(
      error_of(write_text("two.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"tokens\": [1]}\n")),
      {"only one of"});
}

TEST(Jsonl, TokenOutsideVocabulary) {
  const auto path = write_text("vocab.jsonl", "{\"id\": \"t\", \"tokens\": [5, 512, 7]}\n");
  expect_names(error_of(path, 512), {"line 1", "tokens[1]", "512", "outside the vocabulary"});
  EXPECT_EQ(error_of(path, 513), "");
  expect_names(error_of(write_text("neg.jsonl", "{\"id\": \"t\", \"tokens\": [-1]}\n")),
               {"tokens[0]", "outside"});
  expect_names(error_of(write_text("str.jsonl", "{\"id\": \"t\", \"tokens\": [\"a\"]}\n")),
               {"tokens[0]", "integer"});
}

TEST(Jsonl, DuplicateIds) {
  expect_names(error_of(write_text("dup.jsonl",
                                   "{\"id\": \"x\", \"prompt\": \"a\"}\n"
                                   "{\"id\": \"y\", \"prompt\": \"b\"}\n"
                                   "{\"id\": \"x\", \"prompt\": \"c\"}\n")),
               {"line 3", "duplicate id", "line 1"});
}

TEST(Jsonl, NonNumericAndOutOfRangeOptions) {
  expect_names(error_of(write_text(
                   "o1.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"max_new_tokens\": \"ten\"}\n")),
               {"field max_new_tokens", "integer"});
  expect_names(error_of(write_text("o2.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"top_p\": 1.5}\n")),
               {"field top_p", "out of range"});
  expect_names(
      error_of(write_text("o3.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"max_new_tokens\": -1}\n")),
      {"field max_new_tokens", "out of range"});
  expect_names(
      error_of(write_text("o4.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"ignore_eos\": 1}\n")),
      {"field ignore_eos"});
}

TEST(Jsonl, UnknownFieldIsNamed) {
  expect_names(
      error_of(write_text("typo.jsonl", "{\"id\": 1, \"prompt\": \"a\", \"max_tokens\": 9}\n")),
      {"field max_tokens", "unknown field"});
}

TEST(Jsonl, BadMessages) {
  expect_names(
      error_of(write_text("m.jsonl", "{\"id\": 1, \"messages\": [{\"role\": \"user\"}]}\n")),
      {"messages[0]", "role and content"});
}

TEST(Jsonl, EmptyFile) {
  expect_names(error_of(write_text("none.jsonl", "\n\n")), {"no documents"});
}

// --- HDF5 ----------------------------------------------------------------------------------

void write_vlen_strings(hid_t group, const char* name, const std::vector<std::string>& values) {
  Hdf5Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const hsize_t dims[1] = {values.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(
      H5Dcreate2(group, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  ASSERT_GE(H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), 0);
}

void write_token_lists(hid_t group, const std::vector<std::vector<int>>& lists) {
  Hdf5Handle type(H5Tvlen_create(H5T_NATIVE_INT));
  const hsize_t dims[1] = {lists.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(
      H5Dcreate2(group, "tokens", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<hvl_t> raw;
  for (const auto& l : lists) raw.push_back(hvl_t{l.size(), const_cast<int*>(l.data())});
  ASSERT_GE(H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), 0);
}

void write_ints(hid_t group, const char* name, const std::vector<int>& values) {
  const hsize_t dims[1] = {values.size()};
  Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
  Hdf5Handle set(
      H5Dcreate2(group, name, H5T_NATIVE_INT, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  ASSERT_GE(H5Dwrite(set.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
}

// Creates an HDF5 input; `fill` writes datasets into /documents.
template <typename Fill>
std::string make_h5(const std::string& name, Fill fill) {
  const auto path = (temp_dir() / name).string();
  Hdf5Handle file = create_hdf5(path);
  Hdf5Handle group(H5Gcreate2(file.get(), "/documents", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  fill(group.get());
  return path;
}

TEST(Hdf5Input, ReadsTextDocuments) {
  const auto path = make_h5("text.h5", [](hid_t g) {
    write_vlen_strings(g, "id", {"d0", "d1"});
    write_vlen_strings(g, "text", {"It is a truth", "universally acknowledged"});
    write_ints(g, "max_new_tokens", {4, 8});
  });
  const auto docs = read_documents(path);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1].id, "d1");
  EXPECT_EQ(*docs[1].prompt, "universally acknowledged");
  EXPECT_EQ(*docs[1].max_new_tokens, 8);
}

TEST(Hdf5Input, ReadsTokenDocuments) {
  const auto path = make_h5("tokens.hdf5", [](hid_t g) {
    write_vlen_strings(g, "id", {"a", "b"});
    write_token_lists(g, {{1, 2, 3}, {511}});
  });
  const auto docs = read_documents(path, ReadOptions{512});
  EXPECT_EQ(*docs[0].tokens, (std::vector<std::int32_t>{1, 2, 3}));
  expect_names(error_of(path, 300), {"/documents/tokens", "id b", "511", "outside"});
}

// Found by fuzz_hdf5_input: HDF5 allocates the token sequences it reads one by one, and a read
// that failed part-way (an entry pointing past the end of the file) left those it had allocated
// behind (LeakSanitizer in the ASan build). Such an entry is now refused by the check that runs
// before the read, naming it; a read that still fails part-way frees what it got.
TEST(Hdf5Input, TokenSequencesThatFailPartWayAreRefusedAndFreed) {
  const std::string path =
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/fuzz/hdf5_tokens_unreadable.h5";
  expect_names(error_of(path, 512), {"/documents/tokens, index ", "past the end of the file"});
}

// Found by fuzz_hdf5_input: a variable-length string type whose characters claim 4 GB each;
// libhdf5 sizes its conversion buffer by the length times that size.
TEST(Hdf5Input, StringCharactersOfAnotherSizeAreRefused) {
  const std::string path =
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/fuzz/hdf5_string_character_size.h5";
  expect_names(error_of(path, 512), {"/documents/id", "characters are not one byte"});
}

// Overwrites 4 bytes (little-endian) of entry `index` of /documents/<name>, a contiguous
// variable-length dataset whose entries are 16 bytes in the file: the length at 0, the heap
// collection's address at 4, the object's index at 12.
void patch_entry(const std::string& path, const std::string& name, int index, int field,
                 std::uint32_t value) {
  haddr_t offset = HADDR_UNDEF;
  {
    Hdf5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    Hdf5Handle set(H5Dopen2(file.get(), ("/documents/" + name).c_str(), H5P_DEFAULT));
    offset = H5Dget_offset(set.get());
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset + 16 * index + field));
  const char bytes[4] = {static_cast<char>(value), static_cast<char>(value >> 8),
                         static_cast<char>(value >> 16), static_cast<char>(value >> 24)};
  f.write(bytes, 4);
  ASSERT_TRUE(f.good());
}

std::string two_token_documents(const std::string& name) {
  return make_h5(name, [](hid_t g) {
    write_vlen_strings(g, "id", {"a", "b"});
    write_token_lists(g, {{1, 2, 3}, {4, 5}});
  });
}

// Found by fuzz_hdf5_input: libhdf5 allocates and zeroes the length an entry declares before it
// reads the entry's heap object, so a corrupt length made a 1 KB file allocate and touch
// gigabytes (up to 4G elements). Entries are checked against their heap objects first.
TEST(Hdf5Input, EntryLongerThanItsHeapObjectIsRefusedBeforeReading) {
  const auto path = two_token_documents("long_entry.h5");
  patch_entry(path, "tokens", 1, 0, 0xFFFFFFF0u);
  expect_names(error_of(path, 512),
               {"/documents/tokens, index 1", "declares 4294967280 elements of 4 bytes",
                "heap object holds 8 bytes", "corrupt"});
}

// The other way round, libhdf5 copies the whole object into a buffer sized by the length.
TEST(Hdf5Input, EntryShorterThanItsHeapObjectIsRefused) {
  const auto path = two_token_documents("short_entry.h5");
  patch_entry(path, "tokens", 0, 0, 1);
  expect_names(error_of(path, 512),
               {"/documents/tokens, index 0", "declares 1 elements", "heap object holds 12 bytes"});
}

// libhdf5 reads the object of an entry of length 0 as well (only address 0 is a null entry).
TEST(Hdf5Input, EmptyEntryPointingToAnObjectIsRefused) {
  const auto path = two_token_documents("empty_entry.h5");
  patch_entry(path, "tokens", 0, 0, 0);
  expect_names(error_of(path, 512),
               {"/documents/tokens, index 0", "declares 0 elements", "heap object holds 12 bytes"});
  // An empty list as libhdf5 writes it is an empty prompt, not a corrupt file.
  const auto written = make_h5("empty_list.h5", [](hid_t g) {
    write_vlen_strings(g, "id", {"a", "b"});
    write_token_lists(g, {{}, {4}});
  });
  expect_names(error_of(written, 512), {"/documents/tokens", "id a", "empty prompt"});
}

TEST(Hdf5Input, EntryPointingToAMissingHeapObjectIsRefused) {
  const auto missing = two_token_documents("missing_object.h5");
  patch_entry(missing, "tokens", 1, 12, 999);
  expect_names(error_of(missing, 512),
               {"/documents/tokens, index 1", "object 999", "does not exist"});
  const auto outside = two_token_documents("outside_heap.h5");
  patch_entry(outside, "tokens", 0, 4, 0x7FFFFFF0u);
  expect_names(error_of(outside, 512), {"/documents/tokens, index 0", "past the end of the file"});
  const auto not_heap = two_token_documents("not_heap.h5");
  patch_entry(not_heap, "tokens", 0, 4, 8);  // inside the superblock
  expect_names(error_of(not_heap, 512),
               {"/documents/tokens, index 0", "not a global heap collection"});
}

TEST(Hdf5Input, VariableLengthStringWithACorruptLengthIsRefused) {
  const auto path = make_h5("long_text.h5", [](hid_t g) {
    write_vlen_strings(g, "id", {"a"});
    write_vlen_strings(g, "text", {"hello"});
  });
  patch_entry(path, "text", 0, 0, 0x40000000u);
  expect_names(error_of(path), {"/documents/text, index 0", "declares 1073741824 elements of 1",
                                "heap object holds 5 bytes"});
}

// --max-record-mb bounds one HDF5 entry as it bounds one JSONL line.
TEST(Hdf5Input, EntriesOverTheRecordLimitAreRefused) {
  const auto path = two_token_documents("record_limit.h5");
  ReadOptions options{512};
  options.max_record_bytes = 10;  // the first list is 12 bytes in the file
  try {
    read_documents(path, options);
    ADD_FAILURE() << "read";
  } catch (const InputError& e) {
    expect_names(e.what(), {"/documents/tokens, index 0", "12 bytes", "--max-record-mb"});
  }
  const auto wide = make_h5("wide_strings.h5", [](hid_t g) {
    write_vlen_strings(g, "text", {"x"});
    Hdf5Handle type(H5Tcopy(H5T_C_S1));
    H5Tset_size(type.get(), std::size_t{2} << 20);
    const hsize_t dims[1] = {1};
    Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
    Hdf5Handle set(
        H5Dcreate2(g, "id", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  });
  options.max_record_bytes = std::int64_t{1} << 20;
  try {
    read_documents(wide, options);
    ADD_FAILURE() << "read";
  } catch (const InputError& e) {
    expect_names(e.what(),
                 {"/documents/id", "fixed-length strings of 2097152 bytes", "--max-record-mb"});
  }
}

// A chunked dataset declares its extent without storing it: an extent no file of this size can
// hold is refused before anything is sized by it.
TEST(Hdf5Input, ExtentLargerThanTheFileIsRefused) {
  const auto path = make_h5("huge_extent.h5", [](hid_t g) {
    write_vlen_strings(g, "text", {"x"});
    Hdf5Handle type(H5Tcopy(H5T_C_S1));
    H5Tset_size(type.get(), H5T_VARIABLE);
    const hsize_t dims[1] = {1000000000};
    const hsize_t chunk[1] = {1024};
    Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
    Hdf5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_chunk(dcpl.get(), 1, chunk);
    Hdf5Handle set(
        H5Dcreate2(g, "id", type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  });
  expect_names(error_of(path),
               {"/documents/id", "declares 1000000000 entries", "more than a file"});
}

// Fixed-length strings are read in slabs; entries on both sides of a slab's edge come back.
TEST(Hdf5Input, FixedLengthStringsAcrossSlabs) {
  constexpr std::size_t width = std::size_t{3} << 20;  // 16 MiB slabs: 5 entries, then the rest
  const auto path = make_h5("slabs.h5", [](hid_t g) {
    Hdf5Handle type(H5Tcopy(H5T_C_S1));
    H5Tset_size(type.get(), width);
    const hsize_t dims[1] = {7};
    Hdf5Handle space(H5Screate_simple(1, dims, nullptr));
    Hdf5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    const hsize_t chunk[1] = {1};
    H5Pset_chunk(dcpl.get(), 1, chunk);
    H5Pset_deflate(dcpl.get(), 1);
    Hdf5Handle set(
        H5Dcreate2(g, "id", type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    std::vector<char> raw(width * 7, '\0');
    for (int i = 0; i < 7; ++i) raw[width * i] = static_cast<char>('a' + i);
    ASSERT_GE(H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), 0);
    write_vlen_strings(g, "text", {"p", "q", "r", "s", "t", "u", "v"});
  });
  const auto docs = read_documents(path);
  ASSERT_EQ(docs.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(docs[i].id, std::string(1, static_cast<char>('a' + i)));
}

// Found by fuzz_hdf5_input: libhdf5 itself crashes on this file (a corrupt local heap: memcpy
// of (size_t)-1 bytes while looking up /documents). It is read in a child process, so the crash
// is one InputError naming the file, and this process goes on.
TEST(Hdf5Input, LibHdf5CrashingOnTheFileIsOneErrorNamingIt) {
  const std::string path =
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/fuzz/hdf5_libhdf5_local_heap_crash.h5";
  const std::string message = error_of(path, 512);
  expect_names(message, {"libhdf5 crashed reading the file"});
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  // And the process still reads files.
  const auto good = two_token_documents("after_crash.h5");
  EXPECT_EQ(read_documents(good, ReadOptions{512}).size(), 2u);
}

TEST(Hdf5Input, NotHdf5) {
  expect_names(error_of(write_text("fake.h5", "{\"id\": 1}\n")), {"not an HDF5 file"});
}

TEST(Hdf5Input, MissingGroupOrDataset) {
  const auto no_group = (temp_dir() / "nogroup.h5").string();
  { Hdf5Handle f = create_hdf5(no_group); }
  expect_names(error_of(no_group), {"/documents", "missing group"});
  expect_names(error_of(make_h5("noid.h5", [](hid_t g) { write_vlen_strings(g, "text", {"x"}); })),
               {"/documents/id", "missing dataset"});
  expect_names(error_of(make_h5("notext.h5", [](hid_t g) { write_vlen_strings(g, "id", {"x"}); })),
               {"exactly one of"});
}

TEST(Hdf5Input, WrongDatasetTypes) {
  expect_names(error_of(make_h5("intid.h5",
                                [](hid_t g) {
                                  write_ints(g, "id", {1});
                                  write_vlen_strings(g, "text", {"x"});
                                })),
               {"/documents/id", "must hold strings"});
  expect_names(error_of(make_h5("inttok.h5",
                                [](hid_t g) {
                                  write_vlen_strings(g, "id", {"x"});
                                  write_ints(g, "tokens", {1});
                                })),
               {"/documents/tokens", "variable-length"});
}

TEST(Hdf5Input, LengthMismatchAndEmptyText) {
  expect_names(error_of(make_h5("len.h5",
                                [](hid_t g) {
                                  write_vlen_strings(g, "id", {"a", "b"});
                                  write_vlen_strings(g, "text", {"x"});
                                })),
               {"differ in length"});
  expect_names(error_of(make_h5("emptytext.h5",
                                [](hid_t g) {
                                  write_vlen_strings(g, "id", {"a"});
                                  write_vlen_strings(g, "text", {""});
                                })),
               {"id a", "empty prompt"});
}

// A dataset the reader does not read (a misspelt max_new_token, a per-request temperature) was
// ignored silently; it is refused by name. And a fixed-length id with a NUL inside it was cut
// at the NUL (two ids "a\0x" and "a\0y" read as the same "a"); refused, naming the index.
TEST(Hdf5Input, UnknownDatasetsAndNulInsideAStringAreRefused) {
  expect_names(error_of(make_h5("unknown.h5",
                                [](hid_t g) {
                                  write_vlen_strings(g, "id", {"a"});
                                  write_vlen_strings(g, "text", {"x"});
                                  write_ints(g, "max_new_token", {4});
                                })),
               {"/documents/max_new_token", "not an input dataset"});
  expect_names(
      error_of(make_h5("nul.h5",
                       [](hid_t g) {
                         const char raw[2][4] = {{'a', '\0', 'x', '\0'}, {'b', '\0', '\0', '\0'}};
                         Hdf5Handle type(H5Tcopy(H5T_C_S1));
                         H5Tset_size(type.get(), 4);
                         const hsize_t n = 2;
                         Hdf5Handle space(H5Screate_simple(1, &n, nullptr));
                         Hdf5Handle set(H5Dcreate2(g, "id", type.get(), space.get(), H5P_DEFAULT,
                                                   H5P_DEFAULT, H5P_DEFAULT));
                         H5Dwrite(set.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw);
                         write_vlen_strings(g, "text", {"x", "y"});
                       })),
      {"/documents/id, index 0", "NUL byte inside the string"});
}

TEST(Hdf5Input, DuplicateIds) {
  expect_names(error_of(make_h5("dup.h5",
                                [](hid_t g) {
                                  write_vlen_strings(g, "id", {"a", "a"});
                                  write_vlen_strings(g, "text", {"x", "y"});
                                })),
               {"index 1", "duplicate id", "index 0"});
}

}  // namespace
}  // namespace infllm::io

namespace infllm::io {
namespace {

TEST(DemoInput, ShippedInputIsValidAndLong) {
  const auto docs = read_documents(std::string(INFLLM_SOURCE_DIR) + "/inputs/demo.jsonl");
  ASSERT_GE(docs.size(), 6u);
  std::size_t longest = 0, shortest = SIZE_MAX;
  std::size_t chats = 0;
  for (const auto& d : docs) {
    const std::size_t chars = d.prompt ? d.prompt->size() : d.messages->front().content.size();
    chats += d.messages.has_value();
    longest = std::max(longest, chars);
    shortest = std::min(shortest, chars);
  }
  EXPECT_GT(longest, 20000u) << "the demo needs a document long enough to borrow KV";
  EXPECT_LT(shortest, 100u) << "short prompts are mixed in";
  EXPECT_GT(chats, 0u) << "and chat requests";
}

}  // namespace
}  // namespace infllm::io
