// convert_to_q8_0 (the --dense-weights q8 load path) on tensors of a real file mapping: the blocks
// equal core/q8_0.h's quantizer applied row by row whatever the thread count and slicing, the
// figures add up, the released bf16 pages read back unchanged from the file, and bad tensors are
// refused with their names. (Bytes against gguf-py: tests/py/test_dense_q8.py.)
#include "model/dense_q8.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/dtypes.h"
#include "core/q8_0.h"
#include "formats/safetensors.h"

namespace gptoss {
namespace {

// Writes a safetensors file with one BF16 tensor "w" [rows, cols] and opens it.
Expected<TensorStore> bf16_file(const std::string& path, int64_t rows, int64_t cols, const std::vector<uint16_t>& v) {
  std::string header = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[" + std::to_string(rows) + "," + std::to_string(cols) +
                       "],\"data_offsets\":[0," + std::to_string(v.size() * 2) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(header.data(), static_cast<std::streamsize>(n));
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 2));
  f.close();
  return TensorStore::open({path});
}

std::string temp_path(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::string("gptoss_dense_q8_") + name + "_" +
                                                    std::to_string(::getpid()) + ".safetensors"))
      .string();
}

TEST(DenseQ8, ConversionEqualsTheBlockQuantizerForAnyThreadCount) {
  // 4100 rows of 2880: 2912 rows per 16 MiB slice, so two slices (one partial) over the threads.
  const int64_t rows = 4100, cols = 2880;
  std::vector<uint16_t> v(static_cast<size_t>(rows * cols));
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (auto& h : v) h = f32_to_bf16(nd(rng));
  const std::string path = temp_path("threads");
  auto store = bf16_file(path, rows, cols, v);
  ASSERT_TRUE(store) << store.status().message();
  const TensorView* t = store->find("w");
  ASSERT_NE(t, nullptr);

  // The reference: the block quantizer row by row, and the figures in double.
  std::vector<uint8_t> want(static_cast<size_t>(rows * q8_0_row_bytes(cols)));
  double err = 0, ref = 0, mx = 0;
  float block[32];
  for (int64_t b = 0; b < rows * cols / 32; ++b) {
    for (int i = 0; i < 32; ++i) block[i] = bf16_to_f32(v[b * 32 + i]);
    const Q8BlockStats s = q8_0_quantize_block(block, want.data() + b * 34);
    err += s.err_sq;
    ref += s.ref_sq;
    mx = std::max(mx, s.max_abs_err);
  }
  auto backend = make_cpu_backend(1);
  for (int threads : {1, 2, 3}) {
    Q8ClassStats stats;
    auto w = convert_to_q8_0(*t, rows, cols, *backend, threads, &stats);
    ASSERT_TRUE(w) << w.status().message();
    EXPECT_EQ(w->type, ElemType::kQ8_0);
    EXPECT_EQ(w->rows, rows);
    EXPECT_EQ(w->cols, cols);
    ASSERT_EQ(w->buf.bytes, want.size());
    EXPECT_EQ(std::memcmp(w->buf.data, want.data(), want.size()), 0) << threads << " threads";
    EXPECT_EQ(stats.tensors, 1u);
    EXPECT_EQ(stats.weights, static_cast<uint64_t>(rows * cols));
    EXPECT_EQ(stats.bytes_before, static_cast<uint64_t>(rows * cols * 2));
    EXPECT_EQ(stats.bytes_after, want.size());
    EXPECT_NEAR(stats.err_sq, err, 1e-9 * err);
    EXPECT_NEAR(stats.ref_sq, ref, 1e-9 * ref);
    EXPECT_EQ(stats.max_abs_err, mx);
    EXPECT_NEAR(stats.rel_rms(), std::sqrt(err / ref), 1e-9);
    EXPECT_GT(stats.rel_rms(), 1e-3);  // 8 bits of a Gaussian block: ~0.5%
    EXPECT_LT(stats.rel_rms(), 1e-2);
    // The source pages were given back to the kernel; reading them again faults them in from the
    // file, unchanged.
    EXPECT_EQ(std::memcmp(t->data, v.data(), v.size() * 2), 0);
  }
  std::filesystem::remove(path);
}

TEST(DenseQ8, BadTensorsAreNamed) {
  const std::string path = temp_path("bad");
  std::vector<uint16_t> v(3 * 64, f32_to_bf16(0.5f));
  v[2 * 64 + 5] = 0x7f80;  // +inf
  auto store = bf16_file(path, 3, 64, v);
  ASSERT_TRUE(store) << store.status().message();
  const TensorView* t = store->find("w");
  auto backend = make_cpu_backend(1);
  Q8ClassStats stats;
  auto inf = convert_to_q8_0(*t, 3, 64, *backend, 2, &stats);
  ASSERT_FALSE(inf);
  EXPECT_NE(inf.status().message().find("'w'"), std::string::npos) << inf.status().message();
  EXPECT_NE(inf.status().message().find("non-finite"), std::string::npos) << inf.status().message();
  TensorView narrow = *t;
  narrow.nbytes = 3 * 40 * 2;
  auto odd = convert_to_q8_0(narrow, 3, 40, *backend, 1, &stats);
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.status().message().find("multiple of 32"), std::string::npos) << odd.status().message();
  EXPECT_EQ(stats.tensors, 0u);  // failed conversions count nothing
  std::filesystem::remove(path);
}

TEST(DenseQ8, StorageNamesAndDevices) {
  EXPECT_EQ(*parse_dense_weights("bf16"), DenseWeights::kBF16);
  EXPECT_EQ(*parse_dense_weights("q8"), DenseWeights::kQ8);
  auto bad = parse_dense_weights("q4");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("'q4'"), std::string::npos);
  EXPECT_TRUE(check_dense_weights_device(DenseWeights::kQ8, "cpu").is_ok());
  EXPECT_TRUE(check_dense_weights_device(DenseWeights::kQ8, "cpu-fast").is_ok());
  EXPECT_TRUE(check_dense_weights_device(DenseWeights::kBF16, "cuda").is_ok());
  const Status cuda = check_dense_weights_device(DenseWeights::kQ8, "cuda");
  EXPECT_FALSE(cuda.is_ok());
  EXPECT_NE(cuda.message().find("cpu-fast"), std::string::npos);
}

}  // namespace
}  // namespace gptoss
