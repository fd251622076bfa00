// A named, typed view of tensor bytes that live in a memory-mapped checkpoint file.
// Views never own or copy data; the TensorStore that produced them keeps the mapping alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gptoss {

enum class DType { kBF16, kF16, kF32, kF64, kU8, kI8, kU16, kI16, kU32, kI32, kU64, kI64, kBool };

// The safetensors spelling ("BF16", "U8", "BOOL", ...).
const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);
// Parses a safetensors dtype string; nullopt for anything gptoss does not know.
std::optional<DType> dtype_from_name(std::string_view name);

// "[4096, 2880]"
std::string shape_to_string(const std::vector<int64_t>& shape);

// Text safe to print in an error message: bytes outside printable ASCII become \xNN.
std::string printable(std::string_view text);

struct TensorView {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the file mapping
  size_t nbytes = 0;
  std::string file;  // the file the bytes come from, for error messages

  int64_t numel() const;
};

}  // namespace gptoss
