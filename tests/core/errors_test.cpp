// errors_test.cpp: typed exceptions name their culprit.
#include <gtest/gtest.h>

#include "core/errors.hpp"

namespace infllm {
namespace {

TEST(Errors, UsageErrorNamesTheOption) {
  const UsageError e("top-p", "value 2 out of range [0, 1]");
  EXPECT_EQ(e.option(), "top-p");
  EXPECT_STREQ(e.what(), "option --top-p: value 2 out of range [0, 1]");
}

TEST(Errors, InputErrorNamesFileAndRecord) {
  const InputError e("docs.jsonl", "line 7, field prompt", "empty prompt");
  EXPECT_STREQ(e.what(), "docs.jsonl: line 7, field prompt: empty prompt");
  EXPECT_EQ(e.file(), "docs.jsonl");
}

TEST(Errors, InputErrorWithoutRecord) {
  EXPECT_STREQ(InputError("m.gguf", "", "not a GGUF file").what(), "m.gguf: not a GGUF file");
}

}  // namespace
}  // namespace infllm
