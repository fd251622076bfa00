// libFuzzer target (GPTOSS_FUZZ=ON, clang): any byte string given to parse_safetensors either
// parses into views that lie inside the buffer and tile it, or fails with a message; it never
// crashes. Run: build-fuzz/src/formats/safetensors_fuzz -max_total_time=60 src/formats/fuzz_seeds
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy so ASan sees any read past the end.
  std::vector<uint8_t> buf(data, data + size);
  auto r = gptoss::parse_safetensors(buf.data(), buf.size(), "fuzz.safetensors");
  if (!r) {
    if (r.status().message().empty()) std::abort();
    return 0;
  }
  size_t covered = 0;
  for (const auto& t : r->tensors) {
    const uint8_t* begin = buf.data() + r->data_start;
    if (t.data < begin || t.data + t.nbytes > buf.data() + buf.size()) std::abort();
    if (static_cast<size_t>(t.numel()) * gptoss::dtype_size(t.dtype) != t.nbytes) std::abort();
    covered += t.nbytes;
  }
  if (covered != size - r->data_start) std::abort();
  return 0;
}
