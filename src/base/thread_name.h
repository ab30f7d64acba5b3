// Names the calling thread (Linux: at most 15 characters, longer names are cut), so that
// `top -H`, `ps -L`, perf and gdb tell a broker's threads apart: the event loop keeps the
// process name, the others are rmq-transport, rmq-flusher, rmq-flush-help, rmq-ledger,
// rmq-write, rmq-loopwatch.
#pragma once

#include <pthread.h>

#include <cstring>

namespace mq {

inline void name_this_thread(const char* name) {
  char cut[16];
  std::strncpy(cut, name, sizeof cut - 1);
  cut[sizeof cut - 1] = '\0';
  (void)::pthread_setname_np(::pthread_self(), cut);  // only fails for a name too long
}

}  // namespace mq
