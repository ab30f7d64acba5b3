// Status and Result<T>: expected operating errors as values (STYLE.md section D).
//
// Status is cheap when OK (a single enum, no allocation) and carries an ErrorCode plus an
// optional message otherwise. Result<T> holds a T or a non-OK Status and mirrors the member
// names of std::expected (has_value, value, error, operator*, operator->) so a later move to
// std::expected<T, Status> is mechanical. Neither type throws. Thread-safety: values, no
// shared state; distinct objects may be used from distinct threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace mq {

// One enum for the whole project. Values are not persisted; they may be renumbered.
enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument,   // the caller (or a client) passed something malformed or out of range
  kNotFound,          // a named thing does not exist
  kAlreadyExists,     // a named thing exists already
  kCorruption,        // bytes read back failed a checksum, length or format check
  kIoError,           // the operating system refused an I/O operation
  kNoSpace,           // ENOSPC or the configured free-space reserve was reached
  kNotLeader,         // this replica is not the leader (a hint may be in the message)
  kTimeout,           // a deadline passed
  kUnavailable,       // temporarily unable (no quorum, shutting down, back-pressure)
  kLimitExceeded,     // a configured bound (bytes, count, queue) would be exceeded
  kUnsupported,       // unknown version, feature or API
  kOutOfRange,        // an index or offset outside what is held
  kAborted,           // the operation was abandoned (leadership lost, term changed)
  kInternal,          // should not happen; reported instead of crashing on external input
};

std::string_view error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message);

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Status already_exists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
  static Status corruption(std::string m) { return {ErrorCode::kCorruption, std::move(m)}; }
  static Status io_error(std::string m) { return {ErrorCode::kIoError, std::move(m)}; }
  static Status no_space(std::string m) { return {ErrorCode::kNoSpace, std::move(m)}; }
  static Status not_leader(std::string m) { return {ErrorCode::kNotLeader, std::move(m)}; }
  static Status timeout(std::string m) { return {ErrorCode::kTimeout, std::move(m)}; }
  static Status unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Status limit_exceeded(std::string m) { return {ErrorCode::kLimitExceeded, std::move(m)}; }
  static Status unsupported(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }
  static Status out_of_range(std::string m) { return {ErrorCode::kOutOfRange, std::move(m)}; }
  static Status aborted(std::string m) { return {ErrorCode::kAborted, std::move(m)}; }
  static Status internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
  // An I/O error from errno (ENOSPC maps to kNoSpace).
  static Status from_errno(int error_number, std::string_view context);

  bool is_ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const = delete;  // be explicit: is_ok()
  ErrorCode code() const { return code_; }
  const std::string& message() const;
  std::string to_string() const;  // "Corruption: segment 7: bad crc"

  bool operator==(ErrorCode code) const { return code_ == code; }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::shared_ptr<const std::string> message_;  // null when OK or empty
};

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cvref_t<T>, Status>, "Result<Status> is meaningless");

 public:
  using value_type = T;

  Result(const T& value) : storage_(std::in_place_index<0>, value) {}  // NOLINT implicit
  Result(T&& value) : storage_(std::in_place_index<0>, std::move(value)) {}  // NOLINT implicit
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, Status> &&
             !std::is_same_v<std::remove_cvref_t<U>, Result> &&
             !std::is_same_v<std::remove_cvref_t<U>, T>)
  Result(U&& value) : storage_(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT
  Result(Status status) : storage_(std::in_place_index<1>, std::move(status)) {  // NOLINT implicit
    MQ_ASSERT(!std::get<1>(storage_).is_ok(), "Result constructed from an OK Status");
  }

  bool has_value() const { return storage_.index() == 0; }
  bool is_ok() const { return has_value(); }

  T& value() & {
    check_value();
    return std::get<0>(storage_);
  }
  const T& value() const& {
    check_value();
    return std::get<0>(storage_);
  }
  T&& value() && {
    check_value();
    return std::get<0>(std::move(storage_));
  }
  T value_or(T fallback) const& { return has_value() ? std::get<0>(storage_) : fallback; }

  const Status& error() const& {
    MQ_ASSERT(!has_value(), "error() on a Result holding a value");
    return std::get<1>(storage_);
  }
  Status&& error() && {
    MQ_ASSERT(!has_value(), "error() on a Result holding a value");
    return std::get<1>(std::move(storage_));
  }
  // OK when it holds a value, the error otherwise.
  Status status() const { return has_value() ? Status() : std::get<1>(storage_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check_value() const {
    if (!has_value()) {
      ::mq::detail::assert_fail("has_value()", __FILE__, __LINE__, "value() on error Result: %s",
                                std::get<1>(storage_).to_string().c_str());
    }
  }
  std::variant<T, Status> storage_;
};

}  // namespace mq

#define MQ_CONCAT_INNER_(a, b) a##b
#define MQ_CONCAT_(a, b) MQ_CONCAT_INNER_(a, b)

// Returns the Status of `expr` (a Status or a Result) from the enclosing function if not OK.
#define MQ_RETURN_IF_ERROR(expr)                                  \
  do {                                                            \
    auto mq_status_or_result_ = (expr);                           \
    if (!mq_status_or_result_.is_ok()) {                          \
      return ::mq::detail::to_status(std::move(mq_status_or_result_)); \
    }                                                             \
  } while (0)

// `MQ_ASSIGN_OR_RETURN(auto x, f())` declares x from the Result's value or returns its error.
#define MQ_ASSIGN_OR_RETURN(lhs, expr) \
  MQ_ASSIGN_OR_RETURN_IMPL_(MQ_CONCAT_(mq_result_, __LINE__), lhs, expr)
#define MQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.has_value()) {                         \
    return std::move(tmp).error();                \
  }                                               \
  lhs = std::move(tmp).value()

namespace mq::detail {
inline Status to_status(Status s) { return s; }
template <typename T>
Status to_status(Result<T> r) {
  return std::move(r).error();
}
}  // namespace mq::detail
