// AMX bf16 GEMM (see amx_gemm.h). This file is compiled with -mamx-tile -mamx-bf16 (the tile
// intrinsics are inline assembly that needs them); the AVX-512 code carries target attributes, so
// nothing here runs an instruction the CPU lacks before amx_usable() said yes.
#include "backend/cpu_fast/amx_gemm.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__AMX_TILE__) && defined(__AMX_BF16__)
#define GPTOSS_HAVE_AMX 1
#endif

#ifdef GPTOSS_HAVE_AMX

// GCC 12 flags the AVX-512 intrinsics' deliberately undefined pass-through operands when they are
// inlined into target-attributed functions (before the include: the warning points into it).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/dtypes.h"

namespace gptoss::cpu_fast {
namespace {

#define GPTOSS_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int64_t kTileRows = 16;   // rows of every tile
constexpr int64_t kTileK = 32;      // bf16 per tile row (64 bytes)
constexpr int64_t kTileElems = 512;  // uint16_t per tile (1 KiB)
constexpr int64_t kTokenBlockTiles = 4;  // 64 tokens of packed x stay in L2 while weight rows pass

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tile registers: C (f32 16x16) 0-3 as c[m][n] = 2m + n, A (weight rows) 4-5, B (x terms) 6-7.
// Packed x: the B tile of term p, token tile tb and k block kb at ((p * TB + tb) * KB + kb) * 512;
// in it, dword (j, t) holds values 2j, 2j + 1 of token t (the pairs TDPBF16PS multiplies).
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void load_tile_config() {
  TileConfig cfg;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = kTileRows;
  }
  _tile_loadconfig(&cfg);
}

// C tiles for weight rows [0, 16 MR) x the tokens of token tiles tb .. tb + NT - 1, stored to c as
// c[(2m + n) * 256 + row * 16 + token].
template <int MR, int NT>
void micro_kernel(const uint16_t* a, int64_t lda, const uint16_t* packed_x, int64_t TB, int64_t KB, int parts,
                  int64_t tb, float* c) {
  const int64_t stride = lda * 2;
  _tile_zero(0);
  if constexpr (NT == 2) _tile_zero(1);
  if constexpr (MR == 2) _tile_zero(2);
  if constexpr (MR == 2 && NT == 2) _tile_zero(3);
  for (int64_t kb = 0; kb < KB; ++kb) {
    _tile_loadd(4, a + kb * kTileK, stride);
    if constexpr (MR == 2) _tile_loadd(5, a + kTileRows * lda + kb * kTileK, stride);
    for (int p = 0; p < parts; ++p) {
      const uint16_t* b = packed_x + ((p * TB + tb) * KB + kb) * kTileElems;
      _tile_loadd(6, b, 64);
      if constexpr (NT == 2) _tile_loadd(7, b + KB * kTileElems, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NT == 2) _tile_dpbf16ps(1, 4, 7);
      if constexpr (MR == 2) _tile_dpbf16ps(2, 5, 6);
      if constexpr (MR == 2 && NT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, 64);
  if constexpr (NT == 2) _tile_stored(1, c + 256, 64);
  if constexpr (MR == 2) _tile_stored(2, c + 512, 64);
  if constexpr (MR == 2 && NT == 2) _tile_stored(3, c + 768, 64);
}

// r[i] <- column i of the 16 x 16 dword matrix with rows r[0..15].
GPTOSS_AVX512 inline void transpose16(__m512i* r) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
  }
}

// A stored C tile c[row][token] to out[token * ldo + row], rows < rn, tokens < tn.
GPTOSS_AVX512 void store_transposed(const float* c, int64_t rn, int64_t tn, float* out, int64_t ldo) {
  __m512i z[16];
  for (int i = 0; i < 16; ++i) z[i] = _mm512_load_si512(c + i * 16);
  transpose16(z);
  const __mmask16 m = rn >= 16 ? 0xffff : static_cast<__mmask16>((1u << rn) - 1);
  for (int64_t t = 0; t < tn; ++t) _mm512_mask_storeu_ps(out + t * ldo, m, _mm512_castsi512_ps(z[t]));
}

// Weight rows [0, rows) at a (lda elements apart, KB * 32 readable values each, rows readable up
// to a multiple of 16) times every token: out[t * ldo + r].
void gemm_panel(const uint16_t* a, int64_t lda, int64_t rows, const uint16_t* packed_x, int64_t T, int64_t KB,
                int parts, float* out, int64_t ldo) {
  const int64_t TB = ceil_div(T, kTileRows);
  alignas(64) float c[1024];
  for (int64_t tb0 = 0; tb0 < TB; tb0 += kTokenBlockTiles) {
    const int64_t tb1 = std::min(TB, tb0 + kTokenBlockTiles);
    for (int64_t r0 = 0; r0 < rows; r0 += 2 * kTileRows) {
      const int mr = rows - r0 > kTileRows ? 2 : 1;
      const uint16_t* ar = a + r0 * lda;
      for (int64_t tb = tb0; tb < tb1; tb += 2) {
        const int nt = tb + 1 < tb1 ? 2 : 1;
        if (mr == 2 && nt == 2) micro_kernel<2, 2>(ar, lda, packed_x, TB, KB, parts, tb, c);
        if (mr == 2 && nt == 1) micro_kernel<2, 1>(ar, lda, packed_x, TB, KB, parts, tb, c);
        if (mr == 1 && nt == 2) micro_kernel<1, 2>(ar, lda, packed_x, TB, KB, parts, tb, c);
        if (mr == 1 && nt == 1) micro_kernel<1, 1>(ar, lda, packed_x, TB, KB, parts, tb, c);
        for (int m = 0; m < mr; ++m) {
          for (int n = 0; n < nt; ++n) {
            const float* cm = c + (2 * m + n) * 256;
            const int64_t rn = std::min(kTileRows, rows - r0 - m * kTileRows);
            const int64_t t0 = (tb + n) * kTileRows, tn = std::min(kTileRows, T - t0);
            store_transposed(cm, rn, tn, out + t0 * ldo + r0 + m * kTileRows, ldo);
          }
        }
      }
    }
  }
}

// One 16-token x 32-value block of x (rows[t], n valid values each, nullptr: a padding row) as
// `parts` B tiles: the term of token t is column t (16 dwords: value pairs), so the rows are
// split into terms, then transposed in registers.
GPTOSS_AVX512 void pack_block(const float* const* rows, int64_t n, int parts, uint16_t* tile, int64_t part_stride) {
  alignas(64) float rest[16][32];
  const __mmask16 m0 = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 m1 = n >= 32 ? 0xffff : n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  for (int t = 0; t < 16; ++t) {
    const __m512 v0 = rows[t] ? _mm512_maskz_loadu_ps(m0, rows[t]) : _mm512_setzero_ps();
    const __m512 v1 = rows[t] ? _mm512_maskz_loadu_ps(m1, rows[t] + 16) : _mm512_setzero_ps();
    _mm512_store_ps(rest[t], v0);
    _mm512_store_ps(rest[t] + 16, v1);
  }
  for (int p = 0; p < parts; ++p) {
    __m512i z[16];
    for (int t = 0; t < 16; ++t) {
      const __m512 v0 = _mm512_load_ps(rest[t]), v1 = _mm512_load_ps(rest[t] + 16);
      z[t] = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);  // bf16 i = value i (v0 first)
      if (p + 1 < parts) {
        // What the term left: exact in f32.
        const __m512 h0 =
            _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(z[t])), 16));
        const __m512 h1 =
            _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(z[t], 1)), 16));
        _mm512_store_ps(rest[t], _mm512_sub_ps(v0, h0));
        _mm512_store_ps(rest[t] + 16, _mm512_sub_ps(v1, h1));
      }
    }
    transpose16(z);
    uint16_t* out = tile + p * part_stride;
    for (int j = 0; j < 16; ++j) _mm512_storeu_si512(out + j * 32, z[j]);
  }
}

GPTOSS_AVX512 void pack_rows(const float* const* x, int64_t T, int64_t K, int parts, int64_t t0, int64_t t1,
                             uint16_t* packed) {
  const int64_t TB = ceil_div(T, kTileRows), KB = ceil_div(K, kTileK);
  const int64_t part_stride = TB * KB * kTileElems;
  const int64_t tb1 = t1 >= T ? TB : ceil_div(t1, kTileRows);
  for (int64_t tb = t0 / kTileRows; tb < tb1; ++tb) {
    const float* rows[16];
    for (int64_t kb = 0; kb < KB; ++kb) {
      const int64_t k0 = kb * kTileK;
      for (int64_t t = 0; t < 16; ++t) rows[t] = tb * kTileRows + t < T ? x[tb * kTileRows + t] + k0 : nullptr;
      pack_block(rows, std::min(kTileK, K - k0), parts, packed + (tb * KB + kb) * kTileElems, part_stride);
    }
  }
}

// bf16 bits of the 16 E2M1 values, twice (a permute index keeps 5 bits; see mxfp4_to_bf16), and
// the bf16 exponent increment (s - 127) << 7 of scale byte s.
struct Mxfp4Bf16Tables {
  alignas(64) uint16_t values[32];
  int16_t exp_add[256];
  Mxfp4Bf16Tables() {
    for (int i = 0; i < 32; ++i) values[i] = f32_to_bf16(kMxfp4Values[i % 16]);
    for (int s = 0; s < 256; ++s) exp_add[s] = static_cast<int16_t>((s - 127) * 128);
  }
};

GPTOSS_AVX512 void mxfp4_to_bf16(const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                                 uint16_t* out, int64_t ldo) {
  static const Mxfp4Bf16Tables tables;
  const __m512i values = _mm512_load_si512(tables.values);
  const __mmask32 nonzero = ~0x01010101u;  // entries 0 and 8 (twice) are +-0: no exponent to scale
  const int64_t nb = cols / kMxfp4BlockElems;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t i = r * nb + b;
      const uint8_t s = scales[i];
      uint16_t* o = out + r * ldo + b * 32;
      if (s < 2 || s > 252) {
        // Products below the normal range or above it (inf/NaN): through f32 as the exact path.
        float f[32];
        mxfp4_block_to_f32(blocks + i * 16, s, f);
        for (int j = 0; j < 32; ++j) o[j] = f32_to_bf16(f[j]);
        continue;
      }
      // The block's table: E2M1 x 2^(s - 127) by adding to the exponent (0.5..6 stay normal).
      const __m512i lut = _mm512_mask_add_epi16(values, nonzero, values, _mm512_set1_epi16(tables.exp_add[s]));
      // Word 2j: byte j (its low nibble, plus bit 4 which the doubled table ignores); word 2j + 1:
      // byte j >> 4.
      const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + i * 16)));
      const __m512i idx = _mm512_or_si512(d, _mm512_slli_epi32(d, 12));
      _mm512_storeu_si512(o, _mm512_permutexvar_epi16(idx, lut));
    }
  }
}

// e^x: x = n ln2 + r (|r| <= ln2 / 2, ln2 in two parts), e^r by a degree-7 Taylor polynomial
// (truncation error < 2e-9 relative), 2^n applied by VSCALEFPS (overflow to inf, underflow to 0).
GPTOSS_AVX512 inline __m512 exp512(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

GPTOSS_AVX512 void swiglu_pairs(const float* y, const float* bias, int64_t n, float limit, float alpha, float* h) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 lim = _mm512_set1_ps(limit), nlim = _mm512_set1_ps(-limit), nalpha = _mm512_set1_ps(-alpha);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t j0 = 0; j0 < n / 2; j0 += 16) {
    const int64_t m = std::min<int64_t>(16, n / 2 - j0);  // outputs; 2m inputs
    const __mmask16 k0 = m >= 8 ? 0xffff : static_cast<__mmask16>((1u << (2 * m)) - 1);
    const __mmask16 k1 = m >= 16 ? 0xffff : m <= 8 ? 0 : static_cast<__mmask16>((1u << (2 * m - 16)) - 1);
    const __m512 a = _mm512_add_ps(_mm512_maskz_loadu_ps(k0, y + 2 * j0), _mm512_maskz_loadu_ps(k0, bias + 2 * j0));
    const __m512 b =
        _mm512_add_ps(_mm512_maskz_loadu_ps(k1, y + 2 * j0 + 16), _mm512_maskz_loadu_ps(k1, bias + 2 * j0 + 16));
    const __m512 gate = _mm512_min_ps(_mm512_permutex2var_ps(a, even, b), lim);
    const __m512 up = _mm512_max_ps(_mm512_min_ps(_mm512_permutex2var_ps(a, odd, b), lim), nlim);
    const __m512 glu = _mm512_mul_ps(gate, _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_mul_ps(gate, nalpha)))));
    const __mmask16 km = m >= 16 ? 0xffff : static_cast<__mmask16>((1u << m) - 1);
    _mm512_mask_storeu_ps(h + j0, km, _mm512_mul_ps(_mm512_add_ps(up, one), glu));
  }
}

// Tile permission and CPU features; the self check runs after.
const char* hardware_reason() {
  unsigned a, b, c, d;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
  if (a < 7) return "CPUID has no leaf 7";
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  const bool amx_tile = d & (1u << 24), amx_bf16 = d & (1u << 22);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 31));  // F, BW, VL
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  const bool avx512_bf16 = a & (1u << 5);
  if (!amx_tile || !amx_bf16) return "no AMX-BF16 in CPUID";
  if (!avx512 || !avx512_bf16) return "no AVX-512 BW/VL/BF16 in CPUID";
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!(c & (1u << 27))) return "OSXSAVE is off";
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  // x87/SSE/AVX (0-2), AVX-512 opmask/ZMM (5-7), tile config/data (17-18).
  if ((lo & 0x600e7u) != 0x600e7u) return "the OS does not enable the AVX-512 or AMX state (XCR0)";
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    return "the kernel refused the AMX tile data permission (arch_prctl)";
  }
  return "";
}

// A GEMM with K, R and T tails against a float64 reference, for 2 and 3 parts; the decode and the
// SwiGLU against the exact kernels.
bool self_check() {
  uint32_t state = 777;
  auto uniform = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  constexpr int64_t T = 19, K = 80, R = 37;
  std::vector<uint16_t> w(R * K);
  for (auto& v : w) v = f32_to_bf16(uniform());
  std::vector<float> x(T * K);
  for (auto& v : x) v = uniform() * 3.0f;
  std::vector<const float*> xs(T);
  for (int64_t t = 0; t < T; ++t) xs[t] = x.data() + t * K;
  for (int parts : {2, 3}) {
    std::vector<uint16_t> packed(amx_packed_x_elems(T, K, parts));
    amx_pack_x(xs.data(), T, K, parts, 0, T, packed.data());
    std::vector<float> out(T * R, -1.0f);
    amx_gemm_bf16w(packed.data(), T, parts, w.data(), K, R, K, out.data(), R);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t r = 0; r < R; ++r) {
        double want = 0.0, mag = 0.0;
        for (int64_t i = 0; i < K; ++i) {
          const double p = static_cast<double>(x[t * K + i]) * bf16_to_f32(w[r * K + i]);
          want += p;
          mag += std::fabs(p);
        }
        const double tol = (parts == 3 ? 1e-6 : 3e-5) * mag;  // 2 parts: each x to ~2^-17
        if (!(std::fabs(out[t * R + r] - want) <= tol)) return false;
      }
    }
  }
  // The MXFP4 decode (every code, scales 100..131) and the SwiGLU against the exact kernels.
  std::vector<uint8_t> blocks(64 * 16), scales(64);
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = static_cast<uint8_t>(i * 37 + i / 16);
  for (size_t i = 0; i < scales.size(); ++i) scales[i] = static_cast<uint8_t>(100 + i / 2);
  std::vector<uint16_t> bf(64 * 32);
  mxfp4_to_bf16(blocks.data(), scales.data(), 32, 64, bf.data(), 32);
  for (int64_t b = 0; b < 64; ++b) {
    float want[32];
    mxfp4_block_to_f32(blocks.data() + b * 16, scales[b], want);
    for (int i = 0; i < 32; ++i) {
      if (bf16_to_f32(bf[b * 32 + i]) != want[i]) return false;
    }
  }
  std::vector<float> y(T * K), bias(T * K, 0.25f), h(T * K / 2);
  for (size_t i = 0; i < y.size(); ++i) y[i] = x[i] * 4.0f;  // -12..12: both clamps and the sigmoid's tails
  swiglu_pairs(y.data(), bias.data(), T * K, 7.0f, 1.702f, h.data());
  for (int64_t j = 0; j < T * K / 2; ++j) {
    const float want = cpu::swiglu(y[2 * j] + 0.25f, y[2 * j + 1] + 0.25f, 7.0f, 1.702f);
    if (!(std::fabs(h[j] - want) <= 1e-6f * (std::fabs(want) + 1e-30f))) return false;
  }
  return true;
}

struct Availability {
  bool usable = false;
  const char* reason = "";
};

const Availability& availability() {
  static const Availability a = [] {
    Availability v;
    v.reason = hardware_reason();
    if (*v.reason) return v;
    v.usable = true;  // amx_gemm_bf16w may run from here on
    if (!self_check()) {
      v.usable = false;
      v.reason = "the AMX self check against a float64 GEMM failed";
    }
    return v;
  }();
  return a;
}

}  // namespace

bool amx_usable() { return availability().usable; }
const char* amx_unusable_reason() { return availability().reason; }

size_t amx_packed_x_elems(int64_t T, int64_t K, int parts) {
  return static_cast<size_t>(parts * ceil_div(T, kTileRows) * ceil_div(K, kTileK) * kTileElems);
}

void amx_pack_x(const float* const* x, int64_t T, int64_t K, int parts, int64_t t0, int64_t t1, uint16_t* packed) {
  pack_rows(x, T, K, parts, t0, t1, packed);
}

void amx_gemm_bf16w(const uint16_t* packed_x, int64_t T, int parts, const uint16_t* w, int64_t ldw, int64_t R,
                    int64_t K, float* out, int64_t ldo) {
  const int64_t KB = ceil_div(K, kTileK), Kp = KB * kTileK;
  load_tile_config();
  // Rows read in place: whole 16-row tiles when K fills whole tile rows; the rest is copied into
  // a zero-padded panel (AMX multiplies whatever bits it loads, so padding must be real zeros).
  const int64_t direct = K == Kp ? R / kTileRows * kTileRows : 0;
  if (direct > 0) gemm_panel(w, ldw, direct, packed_x, T, KB, parts, out, ldo);
  if (direct < R) {
    thread_local std::vector<uint16_t> pad;
    const int64_t rows = R - direct;
    pad.assign(static_cast<size_t>(ceil_div(rows, kTileRows) * kTileRows * Kp), 0);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(pad.data() + r * Kp, w + (direct + r) * ldw, K * 2);
    gemm_panel(pad.data(), Kp, rows, packed_x, T, KB, parts, out + direct, ldo);
  }
  _tile_release();
}

void amx_mxfp4_rows_to_bf16(const uint8_t* blocks, const uint8_t* scales, int64_t cols, int64_t rows,
                            uint16_t* out, int64_t ldo) {
  mxfp4_to_bf16(blocks, scales, cols, rows, out, ldo);
}

void avx512_swiglu_pairs(const float* y, const float* bias, int64_t n, float limit, float alpha, float* h) {
  swiglu_pairs(y, bias, n, limit, alpha, h);
}

bool avx512_swiglu_usable() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

}  // namespace gptoss::cpu_fast

#else  // no AMX on this target: amx_usable() is false and the rest is never called.

#include <cstdlib>

namespace gptoss::cpu_fast {

bool amx_usable() { return false; }
const char* amx_unusable_reason() { return "not an x86-64 Linux build with AMX support"; }
size_t amx_packed_x_elems(int64_t, int64_t, int) { return 0; }
void amx_pack_x(const float* const*, int64_t, int64_t, int, int64_t, int64_t, uint16_t*) { std::abort(); }
void amx_gemm_bf16w(const uint16_t*, int64_t, int, const uint16_t*, int64_t, int64_t, int64_t, float*, int64_t) {
  std::abort();
}
void amx_mxfp4_rows_to_bf16(const uint8_t*, const uint8_t*, int64_t, int64_t, uint16_t*, int64_t) { std::abort(); }
void avx512_swiglu_pairs(const float*, const float*, int64_t, float, float, float*) { std::abort(); }
bool avx512_swiglu_usable() { return false; }

}  // namespace gptoss::cpu_fast

#endif
