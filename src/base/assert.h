// Assertions. MQ_ASSERT is always on (release builds included), in the manner of Redpanda's
// vassert: it prints the condition, file:line and a printf-style message, then aborts.
// MQ_DASSERT is for expensive checks: active in Debug, sanitizer, test and sim builds
// (MQ_DEBUG_ASSERTS=1), compiled out otherwise (the condition is still type-checked).
//
// Use assertions only for programmer errors and broken internal invariants. Anything that
// bad input, a peer or the disk can cause is an expected error and is returned as a Status.
#pragma once

namespace mq::detail {
[[noreturn]] void assert_fail(const char* condition, const char* file, int line,
                              const char* format, ...) __attribute__((format(printf, 4, 5)));
[[noreturn]] void assert_fail(const char* condition, const char* file, int line);
}  // namespace mq::detail

#define MQ_ASSERT(cond, ...)                                                 \
  do {                                                                       \
    if (__builtin_expect(!(cond), 0)) {                                      \
      ::mq::detail::assert_fail(#cond, __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__); \
    }                                                                        \
  } while (0)

#if defined(MQ_DEBUG_ASSERTS) && MQ_DEBUG_ASSERTS
#define MQ_DASSERT(cond, ...) MQ_ASSERT(cond __VA_OPT__(, ) __VA_ARGS__)
inline constexpr bool kDebugAsserts = true;
#else
#define MQ_DASSERT(cond, ...)        \
  do {                               \
    if (false) {                     \
      (void)(cond);                  \
    }                                \
  } while (0)
inline constexpr bool kDebugAsserts = false;
#endif

#define MQ_UNREACHABLE(...) ::mq::detail::assert_fail("unreachable", __FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
