#include "core/status.h"

#include <gtest/gtest.h>

namespace gptoss {
namespace {

Expected<int> parse_positive(int v) {
  if (v <= 0) return Error("value {} is not positive", v);
  return v;
}

Status twice(int v, int* out) {
  GPTOSS_ASSIGN_OR_RETURN(int x, parse_positive(v));
  *out = 2 * x;
  return Status::ok();
}

TEST(Status, ErrorsCarryTheirMessageAndContext) {
  int out = 0;
  EXPECT_TRUE(twice(3, &out).is_ok());
  EXPECT_EQ(out, 6);
  Status s = twice(-1, &out).with_context("config.json");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(), "config.json: value -1 is not positive");
}

}  // namespace
}  // namespace gptoss
