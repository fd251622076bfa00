// Safetensors checkpoints: header parsing with full validation, and a TensorStore that maps one or
// more files and serves every tensor in place.
//
// Container: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// data buffer. Offsets are relative to the buffer and must tile it exactly (no gaps, no overlap,
// nothing past the end, nothing left over), as the reference implementation requires.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "formats/tensor.h"

namespace gptoss {

// The reference implementation refuses headers above 100 MB; so do we.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsHeader {
  std::vector<TensorView> tensors;  // data pointers filled in, in file order of data_offsets
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;  // 8 + N
};

// Parses and validates the header of a safetensors image of `size` bytes at `data`. Never reads
// outside [data, data + size). `file` only names the file in error messages.
Expected<SafetensorsHeader> parse_safetensors(const uint8_t* data, size_t size,
                                              const std::string& file);

// Alignment: files written by the reference implementation pad the header so the data buffer
// starts 8-byte aligned, and tensor offsets follow the sizes of the tensors before them; the format
// itself does not require alignment, so a reader of multi-byte elements must not assume it
// (memcpy, or check `reinterpret_cast<uintptr_t>(view.data) % dtype_size(view.dtype)`).
class TensorStore {  // all tensors of one checkpoint, memory-mapped, used in place (never copied)
 public:
  TensorStore() = default;
  TensorStore(TensorStore&&) = default;
  TensorStore& operator=(TensorStore&&) = default;

  // One or more .safetensors files. A tensor name present in two files is an error.
  static Expected<TensorStore> open(const std::vector<std::string>& files);

  const TensorView* find(std::string_view name) const;
  // Validated access: the error names the file, the tensor, and expected vs actual dtype/shape.
  Expected<const TensorView*> get(std::string_view name, DType dtype,
                                  const std::vector<int64_t>& shape) const;

  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  size_t total_bytes() const;  // sum of tensor nbytes
  const std::vector<std::string>& files() const { return files_; }
  // Byte offset of a view's data inside its file; -1 if the view is not from this store.
  int64_t file_offset(const TensorView& t) const;
  // Every tensor in a stable order (by file, then by offset).
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::vector<std::string> files_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace gptoss
