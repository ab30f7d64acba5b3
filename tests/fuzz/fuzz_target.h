// Contract between a fuzz target and its two drivers: libFuzzer (scripts/fuzz, clang-14
// -fsanitize=fuzzer,address) and our own driver (fuzz_driver.cc, g++, registered in ctest as a
// short smoke run).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/buffer.h"

// Must not crash, leak, hang or trip an assertion for any input.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace mq::fuzz {
// Structurally valid inputs for this target, mutated by our driver and written by
// --write-seeds as the starting corpus of the libFuzzer build.
std::vector<Buffer> seeds();
}  // namespace mq::fuzz
