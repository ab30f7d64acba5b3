#include "base/result.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace mq {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("not positive");
  return v;
}

Status uses_assign_or_return(int v, int* out) {
  MQ_ASSIGN_OR_RETURN(int parsed, parse_positive(v));
  *out = parsed * 2;
  return Status::ok();
}

Status uses_return_if_error(int v) {
  MQ_RETURN_IF_ERROR(parse_positive(v));
  MQ_RETURN_IF_ERROR(Status::ok());
  return Status::not_found("reached the end");
}

TEST(Status, OkIsCheapAndEmpty) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.code(), ErrorCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.to_string(), "OK");
}

TEST(Status, FactoriesCarryCodeAndMessage) {
  Status s = Status::corruption("segment 7: bad crc");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), ErrorCode::kCorruption);
  EXPECT_TRUE(s == ErrorCode::kCorruption);
  EXPECT_EQ(s.to_string(), "Corruption: segment 7: bad crc");
  Status copy = s;
  EXPECT_EQ(copy.message(), "segment 7: bad crc");
}

TEST(Status, FromErrnoMapsNoSpace) {
  EXPECT_EQ(Status::from_errno(ENOSPC, "append").code(), ErrorCode::kNoSpace);
  EXPECT_EQ(Status::from_errno(EIO, "append").code(), ErrorCode::kIoError);
  EXPECT_NE(Status::from_errno(EIO, "append").message().find("append: "), std::string::npos);
}

TEST(Result, HoldsValueOrError) {
  Result<int> ok = parse_positive(3);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 3);
  EXPECT_TRUE(ok.status().is_ok());
  Result<int> bad = parse_positive(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(Result, MacrosPropagate) {
  int out = 0;
  EXPECT_TRUE(uses_assign_or_return(4, &out).is_ok());
  EXPECT_EQ(out, 8);
  EXPECT_EQ(uses_assign_or_return(0, &out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(uses_return_if_error(1).code(), ErrorCode::kNotFound);
  EXPECT_EQ(uses_return_if_error(-5).code(), ErrorCode::kInvalidArgument);
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(5));
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> bad = Status::timeout("slow");
  EXPECT_DEATH((void)bad.value(), "value\\(\\) on error Result: Timeout: slow");
}

TEST(AssertDeathTest, AssertPrintsConditionAndMessage) {
  int x = 3;
  EXPECT_DEATH(MQ_ASSERT(x == 4, "x was %d", x), "x == 4.*x was 3");
}

}  // namespace
}  // namespace mq
