#include "model/dense_q8.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/dtypes.h"
#include "core/q8_0.h"

namespace gptoss {

Expected<DenseWeights> parse_dense_weights(std::string_view text) {
  if (text == "bf16") return DenseWeights::kBF16;
  if (text == "q8") return DenseWeights::kQ8;
  return Error("--dense-weights: unknown storage '{}' (use bf16, the default, or q8)", text);
}

const char* dense_weights_name(DenseWeights dense) { return dense == DenseWeights::kQ8 ? "q8" : "bf16"; }

Status check_dense_weights_device(DenseWeights dense, const std::string& device) {
  if (dense != DenseWeights::kQ8 || device == "cpu" || device == "cpu-fast") return Status::ok();
  return Error("--dense-weights q8 runs on --device cpu-fast or cpu only (the {} backend has no Q8_0 kernels); "
               "use --device cpu-fast, or --dense-weights bf16 on {}",
               device, device);
}

double Q8ClassStats::rel_rms() const { return ref_sq > 0 ? std::sqrt(err_sq / ref_sq) : 0.0; }

namespace {

void merge(Q8ClassStats* into, const Q8ClassStats& s) {
  into->weights += s.weights;
  into->bytes_before += s.bytes_before;
  into->bytes_after += s.bytes_after;
  into->err_sq += s.err_sq;
  into->ref_sq += s.ref_sq;
  into->max_abs_err = std::max(into->max_abs_err, s.max_abs_err);
  into->nonfinite += s.nonfinite;
}

// Rows per slice: about 16 MiB of source, at least one row.
int64_t slice_rows(int64_t cols, size_t elem) {
  return std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, cols * static_cast<int64_t>(elem)));
}

// Drops the resident pages that lie entirely inside [p, p + n) of a read-only file mapping (they
// are read back from the file if anything touches them again).
void release_pages(const void* p, size_t n) {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (a + page - 1) / page * page, end = (a + n) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void quantize_rows_q8_0(const void* src, DType dtype, int64_t rows, int64_t cols, uint8_t* dst,
                        Q8ClassStats* stats) {
  Q8ClassStats s;
  float block[kQ8BlockElems];
  uint8_t* out = dst;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols / kQ8BlockElems; ++b) {
      const int64_t at = r * cols + b * kQ8BlockElems;
      // memcpy: safetensors does not align tensor data.
      if (dtype == DType::kBF16) {
        uint16_t h[kQ8BlockElems];
        std::memcpy(h, static_cast<const uint8_t*>(src) + at * 2, sizeof h);
        for (int i = 0; i < kQ8BlockElems; ++i) block[i] = bf16_to_f32(h[i]);
      } else {
        std::memcpy(block, static_cast<const uint8_t*>(src) + at * 4, sizeof block);
      }
      const Q8BlockStats b8 = q8_0_quantize_block(block, out);
      if (!b8.finite) {
        ++s.nonfinite;
      } else {
        s.err_sq += b8.err_sq;
        s.ref_sq += b8.ref_sq;
        s.max_abs_err = std::max(s.max_abs_err, b8.max_abs_err);
      }
      out += kQ8BlockBytes;
    }
  }
  s.weights = static_cast<uint64_t>(rows * cols);
  s.bytes_before = static_cast<uint64_t>(rows * cols) * dtype_size(dtype);
  s.bytes_after = static_cast<uint64_t>(rows) * static_cast<uint64_t>(q8_0_row_bytes(cols));
  merge(stats, s);
}

Expected<Weight> convert_to_q8_0(const TensorView& t, int64_t rows, int64_t cols, Backend& backend, int threads,
                                 Q8ClassStats* stats) {
  if (t.dtype != DType::kBF16 && t.dtype != DType::kF32) {
    return Error("{}: tensor '{}' is {}; only BF16/F32 tensors convert to Q8_0", t.file, t.name, dtype_name(t.dtype));
  }
  if (cols % kQ8BlockElems != 0 || rows <= 0) {
    return Error("{}: tensor '{}' [{}, {}] cannot be stored as Q8_0 (--dense-weights q8): its rows must be a "
                 "multiple of {} weights",
                 t.file, t.name, rows, cols, kQ8BlockElems);
  }
  const size_t elem = dtype_size(t.dtype);
  if (t.nbytes != static_cast<size_t>(rows * cols) * elem) {
    return Error("{}: tensor '{}' holds {} bytes, expected {} for [{}, {}]", t.file, t.name, t.nbytes,
                 static_cast<size_t>(rows * cols) * elem, rows, cols);
  }
  Weight w;
  w.type = ElemType::kQ8_0;
  w.rows = rows;
  w.cols = cols;
  GPTOSS_ASSIGN_OR_RETURN(w.buf, backend.alloc(static_cast<size_t>(rows) * q8_0_row_bytes(cols)));

  const int64_t per = slice_rows(cols, elem), slices = (rows + per - 1) / per;
  const int nthreads = static_cast<int>(std::clamp<int64_t>(threads, 1, slices));
  std::atomic<int64_t> next{0};
  std::mutex mu;
  Q8ClassStats total;
  auto work = [&] {
    Q8ClassStats mine;
    for (int64_t s = next++; s < slices; s = next++) {
      const int64_t r0 = s * per, n = std::min(per, rows - r0);
      const uint8_t* src = t.data + static_cast<size_t>(r0 * cols) * elem;
      quantize_rows_q8_0(src, t.dtype, n, cols, w.buf.as<uint8_t>() + r0 * q8_0_row_bytes(cols), &mine);
      release_pages(src, static_cast<size_t>(n * cols) * elem);
    }
    std::lock_guard<std::mutex> lock(mu);
    merge(&total, mine);
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < nthreads; ++i) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (total.nonfinite > 0) {
    return Error("{}: tensor '{}' has {} non-finite weight(s) (inf/NaN); it cannot be stored as Q8_0 (use "
                 "--dense-weights bf16)",
                 t.file, t.name, total.nonfinite);
  }
  total.tensors = 1;
  stats->tensors += 1;
  merge(stats, total);
  return w;
}

}  // namespace gptoss
