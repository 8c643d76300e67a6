// A request body (the JSON after the header), decoded and round-tripped.

#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz/codec_checks.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kpanel::fuzz::check_request_body(std::span<const std::uint8_t>(data, size));
  return 0;
}
