#include "base/result.h"

#include <cerrno>
#include <cstring>

namespace mq {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIoError: return "IoError";
    case ErrorCode::kNoSpace: return "NoSpace";
    case ErrorCode::kNotLeader: return "NotLeader";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kLimitExceeded: return "LimitExceeded";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kOutOfRange: return "OutOfRange";
    case ErrorCode::kAborted: return "Aborted";
    case ErrorCode::kInternal: return "Internal";
  }
  return "Unknown";
}

Status::Status(ErrorCode code, std::string message) : code_(code) {
  MQ_ASSERT(code != ErrorCode::kOk || message.empty(), "OK status with a message");
  if (!message.empty()) message_ = std::make_shared<const std::string>(std::move(message));
}

Status Status::from_errno(int error_number, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += std::strerror(error_number);
  ErrorCode code = (error_number == ENOSPC || error_number == EDQUOT) ? ErrorCode::kNoSpace
                                                                      : ErrorCode::kIoError;
  return Status(code, std::move(message));
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return message_ ? *message_ : kEmpty;
}

std::string Status::to_string() const {
  std::string out(error_code_name(code_));
  if (message_) {
    out += ": ";
    out += *message_;
  }
  return out;
}

}  // namespace mq
