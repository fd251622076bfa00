// Optional 8-bit storage of the dense projection weights (--dense-weights q8): the attention q/k/v/o
// matrices and the unembedding are converted at load from the checkpoint's bf16/f32 into GGUF Q8_0
// blocks (core/q8_0.h) in anonymous memory. Decode reads them at 1.06 bytes per weight instead of 2;
// the price is the rounding of each weight to 8 bits, which the conversion measures (relative RMS
// error per tensor class) so that `info` can show the trade. bf16 stays the default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "core/status.h"
#include "formats/tensor.h"

namespace gptoss {

enum class DenseWeights { kBF16, kQ8 };

// "bf16" (as stored: bf16, or f32 for f32 exports) or "q8"; errors name the accepted values.
Expected<DenseWeights> parse_dense_weights(std::string_view text);
const char* dense_weights_name(DenseWeights dense);
// q8 runs on the cpu backends only: an error for "cuda" (and for "auto" where it picked cuda).
Status check_dense_weights_device(DenseWeights dense, const std::string& device);

// What converting one class of tensors (attention or unembedding) did.
struct Q8ClassStats {
  uint64_t tensors = 0;
  uint64_t weights = 0;
  uint64_t bytes_before = 0;  // as stored in the checkpoint
  uint64_t bytes_after = 0;   // Q8_0 blocks
  double err_sq = 0.0;        // sum of (w - dequantized w)^2
  double ref_sq = 0.0;        // sum of w^2
  double max_abs_err = 0.0;
  uint64_t nonfinite = 0;     // inf/NaN weights seen (a conversion with any fails)
  // sqrt(err_sq / ref_sq): the quantization error relative to the weights' RMS.
  double rel_rms() const;
};

struct Q8Report {
  bool converted = false;
  Q8ClassStats attention;    // q, k, v (or the fused qkv), o of every layer
  Q8ClassStats unembedding;  // the output projection
  double seconds = 0.0;      // conversion time
};

// Quantizes `rows` rows of `cols` (a multiple of 32) weights of type `dtype` (BF16 or F32) at `src`
// into Q8_0 rows at `dst` (q8_0_row_bytes(cols) each); adds the error figures to `stats`.
void quantize_rows_q8_0(const void* src, DType dtype, int64_t rows, int64_t cols, uint8_t* dst,
                        Q8ClassStats* stats);

// Converts a dense [rows, cols] tensor of a file mapping into a Q8_0 weight in backend memory
// (host memory: the cpu backends). Works in slices over `threads` threads and gives the mapping's
// pages of each converted slice back to the kernel, so the bf16 copy does not stay resident.
// Errors (cols not a multiple of 32, a non-finite weight) name the tensor.
Expected<Weight> convert_to_q8_0(const TensorView& tensor, int64_t rows, int64_t cols, Backend& backend,
                                 int threads, Q8ClassStats* stats);

}  // namespace gptoss
