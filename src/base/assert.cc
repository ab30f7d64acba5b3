#include "base/assert.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace mq::detail {

void assert_fail(const char* condition, const char* file, int line, const char* format, ...) {
  std::fprintf(stderr, "assertion failed: %s at %s:%d: ", condition, file, line);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  std::abort();
}

void assert_fail(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "assertion failed: %s at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace mq::detail
