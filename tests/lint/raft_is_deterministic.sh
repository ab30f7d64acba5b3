#!/usr/bin/env bash
# The Raft core stays deterministic (STYLE.md C, DESIGN.md principle 3): nothing in src/raft
# outside test code may include clocks, threads, locks, randomness sources, files or sockets.
# Test-only code: *_test.cc, src/raft/testing/, src/raft/rafttest/*_test.cc.
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern='#include *<(chrono|thread|mutex|random|fstream|filesystem|future|condition_variable)>|#include *<(sys/socket|netinet/|arpa/|unistd)|asio'
bad=$(grep -rnE "$pattern" src/raft | grep -v '_test\.cc:' || true)
if [[ -n "$bad" ]]; then
  echo "src/raft must stay free of I/O, clocks, threads and randomness sources; found:"
  echo "$bad"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "src/raft: no forbidden includes ($(grep -rlE '.' src/raft | wc -l) files checked)"
