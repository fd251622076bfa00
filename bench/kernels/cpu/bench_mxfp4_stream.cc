// The memory side of the decode MXFP4 expert GEMV: software prefetch schemes and a repacked weight
// layout, streaming from DRAM on 1 and all threads, interleaved with a plain read in the same
// process (run bench/peers/read_bandwidth.c beside it for the machine's number).
//
//   gptoss-bench-mxfp4-stream [--threads N] [--seconds S] [--pool-mb MB] [--rounds R] [--thp]
//                             [--hot] [--only 'SUB1|SUB2|...'] [--offset B]
//
// --hot: each thread runs the same 64-row call (~98 KB, in L2) over and over: the compute rate, not
// the stream. --only: the variants whose names contain one of the parts (and the plain read).
//
// --offset B (0, 8, ..., 56): the checkpoint-layout pool starts B bytes past a 64-byte line, as the
// checkpoints' expert tensors do (the gpt-oss-20b files: 32, 24, 48; rows of 1440 bytes then
// alternate by 32 bytes, and most 64-byte code loads span two lines).
//
// --thp: the pools in transparent huge pages (MADV_HUGEPAGE), as the model's file mapping mostly is
// (2 MB folios of the page cache, bench/results/cpu-mxfp4-gemv.md) and an anonymous repacked copy
// could be; without it, 4 KB pages.
//
// Kernels (AVX-512 only; lab copies with the arithmetic of the library's kernels, whose bits each
// lab line is checked against before it is timed):
//   - f32: gemv_mxfp4's AVX-512 body (per block: VPMOVZXBD, 2 VPERMPS of the scaled E2M1 table, a
//     shift, 2 FMAs; 4 rows per tile; reduced per 256 elements);
//   - int8 x2: gemv_mxfp4_i8's AVX-512 VNNI body with 2 activation parts (the VPSHLDD combine);
//     the library kernel itself also with 1 part ("int8 x1 library", GPTOSS_CPU_FAST_MOE_I8_PARTS=1).
// Layouts:
//   - "checkpoint": rows of nb 16-byte blocks, scales in a separate array (as the model maps them);
//     a 4-row tile reads 4 block streams nb * 16 bytes apart plus 4 scale streams;
//   - "repacked G": per 4-row tile one contiguous range: the 4 rows' scales first (nb rounded up to
//     16 bytes each), then per group of G blocks the 4 rows' G blocks (row 0's G blocks, row 1's
//     ...; the last group holds the nb % G blocks left): G = 1 puts block b of the 4 rows in one
//     64-byte line, G = 4 puts 4 blocks (what one int8 step reads) of the 4 rows in 4 lines. A tile
//     is one sequential stream and the tiles of a matrix follow each other.
// Prefetch (software, per 4-row tile): `dist` bytes ahead of the tile's own lines, spread over its
// block steps so every line of the target tile is requested once (dist = one tile = what the
// library does, "next tile"; 2 or 4 tiles; or a fixed number of bytes), with hint T0 / T1 / T2 /
// NTA, or none (the hardware prefetchers alone). Requests stop at the end of the call's rows.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/cpu_fast/kernels_fast.h"
#include "backend/cpu_fast/kernels_mxfp4_i8.h"
#include "backend/cpu_fast/spin_pool.h"
#include "bench_util.h"

#if defined(__x86_64__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include <immintrin.h>

namespace {

using gptoss::bench::fill_mxfp4;
using gptoss::bench::load_avg;
using gptoss::bench::sum_u64;
using gptoss::bench::time_best;
#define LAB_AVX512 \
  __attribute__((  \
      target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512vbmi2,avx2,fma")))

constexpr int64_t kCols = 2880, kNb = kCols / 32, kNg = (kNb + 3) / 4;
constexpr int64_t kNbPad = (kNb + 15) / 16 * 16;  // a repacked tile's scale bytes per row

// The f32 products E2M1[i] * 2^(e - 127), as the library's ScaledE2M1 table.
struct Table {
  alignas(64) float t[256][16];
  Table() {
    const float e2m1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                            -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
    for (int e = 0; e < 256; ++e) {
      for (int i = 0; i < 16; ++i) t[e][i] = e2m1[i] * std::ldexp(1.0f, e - 127);
    }
  }
};
const Table kTable;

// Where block b of row j of a tile is, and its scale. G = 0: the checkpoint layout (rows of nb
// blocks at `tile`, scales of row j at sc + j * nb); G > 0: repacked (scales at tile + j * kNbPad).
template <int G>
struct Layout {
  static constexpr int64_t kHdr = G == 0 ? 0 : 4 * kNbPad;
  static constexpr int64_t kTileBytes = kHdr + 4 * kNb * 16;
  static inline const uint8_t* blk(const uint8_t* tile, int64_t b, int j) {
    if constexpr (G == 0) {
      return tile + j * kNb * 16 + b * 16;
    } else {
      const int64_t g = b / G, k = b % G;
      const int64_t gw = (g + 1) * G <= kNb ? G : kNb - g * G;
      return tile + kHdr + g * 64 * G + j * 16 * gw + k * 16;
    }
  }
  static inline const uint8_t* scales(const uint8_t* tile, const uint8_t* sc, int j) {
    return G == 0 ? sc + j * kNb : tile + j * kNbPad;
  }
};

// Repacks rows [0, rows) (rows % 4 == 0) of the checkpoint layout into layout G.
template <int G>
void repack(const uint8_t* blocks, const uint8_t* scales, int64_t rows, uint8_t* out) {
  using L = Layout<G>;
  for (int64_t r = 0; r < rows; r += 4) {
    uint8_t* tile = out + r / 4 * L::kTileBytes;
    std::memset(tile, 0, L::kHdr);
    for (int j = 0; j < 4; ++j) {
      std::memcpy(tile + j * kNbPad, scales + (r + j) * kNb, kNb);
      for (int64_t b = 0; b < kNb; ++b) {
        std::memcpy(const_cast<uint8_t*>(L::blk(tile, b, j)), blocks + ((r + j) * kNb + b) * 16,
                    16);
      }
    }
  }
}

// Software prefetch of one tile step: lines [step * L / steps, (step + 1) * L / steps) of the range
// starting `dist` bytes after `tile`, not past `end`; only every g_every-th line (a power of 2) of
// the range (the others left to the hardware's adjacent-line and stream prefetchers, which fill L2
// without holding one of the core's L1 fill buffers for a DRAM latency). Set in main before a
// variant runs.
int64_t g_every = 1;
// int8, checkpoint layout: prefetch all the next tile's scale lines (6), not only its first.
bool g_all_scales = false;
template <int kHint>
LAB_AVX512 inline void prefetch_step(const uint8_t* tile, int64_t tile_bytes, int64_t dist,
                                     int64_t step, int64_t steps, const uint8_t* end) {
  const int64_t lines = (tile_bytes + 63) / 64;
  const uint8_t* base = tile + dist;
  for (int64_t l = step * lines / steps; l < (step + 1) * lines / steps; ++l) {
    const uint8_t* p = base + 64 * l;
    if (p < end && (l & (g_every - 1)) == 0) __builtin_prefetch(p, 0, kHint);
  }
}
// Before a call: its first `dist` bytes (and for the checkpoint layout the scales of the tiles they
// cover), as the library requests its first tile.
template <int kHint>
inline void prefetch_first(const uint8_t* blocks, const uint8_t* end, int64_t dist,
                           const uint8_t* sc, const uint8_t* sc_end) {
  for (const uint8_t* p = blocks; p < std::min(end, blocks + dist); p += 64)
    __builtin_prefetch(p, 0, kHint);
  if (sc != nullptr) {
    const int64_t tiles = (dist + 4 * kNb * 16 - 1) / (4 * kNb * 16);
    for (const uint8_t* p = sc; p < std::min(sc_end, sc + tiles * 4 * kNb); p += 64)
      __builtin_prefetch(p, 0, kHint);
  }
}

LAB_AVX512 inline __m512 sum_of_lanes4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  const __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));
}

// One block of one row: the decoded weights (scaled table looked up by each nibble) times x.
LAB_AVX512 __attribute__((always_inline)) inline __m512 step(const uint8_t* blk, uint8_t e,
                                                             __m512 xe, __m512 xo, __m512 acc) {
  const __m512 scaled = _mm512_load_ps(kTable.t[e]);
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk)));
  acc = _mm512_fmadd_ps(xe, _mm512_permutexvar_ps(v, scaled), acc);
  return _mm512_fmadd_ps(xo, _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), scaled), acc);
}

// f32: rows [0, rows) (rows % 4 == 0); blocks = the call's first tile (G > 0: scales inside).
template <int G, int kHint>
LAB_AVX512 void gemv_f32(const float* xp, const uint8_t* blocks, const uint8_t* scales,
                         int64_t rows, float* out, int64_t dist, int64_t far) {
  using L = Layout<G>;
  const uint8_t* end = blocks + rows / 4 * L::kTileBytes;
  const int64_t pf_tile = G == 0 ? 4 * kNb * 16 : L::kTileBytes;
  const int64_t sc_ahead = (dist + pf_tile - 1) / pf_tile;  // tiles
  if (dist > 0)
    prefetch_first<kHint>(blocks, end, dist, G == 0 ? scales : nullptr, scales + rows * kNb);
  for (int64_t r = 0; r < rows; r += 4) {
    const uint8_t* tile = blocks + r / 4 * L::kTileBytes;
    const uint8_t* s0 = L::scales(tile, scales + r * kNb, 0);
    const uint8_t* s1 = L::scales(tile, scales + r * kNb, 1);
    const uint8_t* s2 = L::scales(tile, scales + r * kNb, 2);
    const uint8_t* s3 = L::scales(tile, scales + r * kNb, 3);
    if (G == 0 && dist > 0 && r + 4 * sc_ahead < rows) {
      const uint8_t* ps = scales + (r + 4 * sc_ahead) * kNb;
      for (int64_t o = 0; o < 4 * kNb; o += 64) __builtin_prefetch(ps + o, 0, kHint);
    }
    if (G == 0 && far > 0 && r + 4 * (far / pf_tile) < rows) {
      const uint8_t* ps = scales + (r + 4 * (far / pf_tile)) * kNb;
      for (int64_t o = 0; o < 4 * kNb; o += 64) __builtin_prefetch(ps + o, 0, 2);
    }
    for (int64_t k0 = 0; k0 < kCols; k0 += 256) {
      const int64_t b1 = std::min<int64_t>(kCols, k0 + 256) / 32;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t b = k0 / 32; b < b1; ++b) {
        if (dist > 0) prefetch_step<kHint>(tile, pf_tile, dist, b, kNb, end);
        if (far > 0) prefetch_step<2>(tile, pf_tile, far, b, kNb, end);
        const __m512 xe = _mm512_loadu_ps(xp + 32 * b), xo = _mm512_loadu_ps(xp + 32 * b + 16);
        a0 = step(L::blk(tile, b, 0), s0[b], xe, xo, a0);
        a1 = step(L::blk(tile, b, 1), s1[b], xe, xo, a1);
        a2 = step(L::blk(tile, b, 2), s2[b], xe, xo, a2);
        a3 = step(L::blk(tile, b, 3), s3[b], xe, xo, a3);
      }
      alignas(64) float v[16];
      _mm512_store_ps(v, sum_of_lanes4(a0, a1, a2, a3));
      for (int j = 0; j < 4; ++j)
        out[r + j] = k0 > 0 ? out[r + j] + (v[4 * j] + 0.0f) : v[4 * j] + 0.0f;
    }
  }
}

// ---- int8 x2 (kernels_mxfp4_i8.cc's layout of a quantized activation vector) -------------------
constexpr int64_t q_offset(int part) { return part * kNg * 128; }
constexpr int64_t corr_offset(int c) { return kNg * 256 + c * kNg * 64; }
constexpr int64_t dh_offset(int part) { return kNg * 512 + part * ((kNg * 16 + 63) / 64 * 64); }
constexpr uint8_t kOffsetCodes[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};

LAB_AVX512 inline float sum8(__m256 v) {
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 d = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// One row's scales (sc: its kNb e8m0 bytes) times d_b / 512 (part 2's) into st[kNg * 4] (0 past kNb),
// as the library's row_scales.
LAB_AVX512 inline void row_scales(const float* dh, const uint8_t* sc, float* st) {
  int64_t b = 0;
  for (; b + 8 <= kNb; b += 8) {
    int64_t e8;
    std::memcpy(&e8, sc + b, 8);
    const __m256i e = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(e8));
    _mm256_storeu_ps(st + b, _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(e, 23)),
                                           _mm256_loadu_ps(dh + b)));
  }
  for (; b < kNb; ++b) {
    const uint32_t bits = static_cast<uint32_t>(sc[b]) << 23;
    float p;
    std::memcpy(&p, &bits, sizeof p);
    st[b] = p * dh[b];
  }
  for (; b < kNg * 4; ++b) st[b] = 0.0f;
}

// The scales of a tile's 4 rows (row_scales), row j at s + j * kNg * 4.
LAB_AVX512 inline void tile_scales(const float* dh, const uint8_t* const* sc, float* s) {
  for (int j = 0; j < 4; ++j) row_scales(dh, sc[j], s + j * kNg * 4);
}

// kForm: 1 = the library's (the 2-part combine as one VPSHLDD); the lab forms moved here from the
// library (commit 2b7fdc6 measured them): 0 = the combine as a shift and an add (corr_0, corr_1),
// 2 = VPSHLDD and the high nibbles by VPMULTISHIFTQB instead of VPSRLW. The same int32 sums.
template <int G, int kHint, int kForm = 1>
LAB_AVX512 void gemv_i8(const uint8_t* act, const uint8_t* blocks, const uint8_t* scales,
                        int64_t rows, float* out, int64_t dist, int64_t far) {
  static_assert(G == 0 || G == 4, "an int8 step reads 4 blocks of a row");
  using L = Layout<G>;
  alignas(64) uint8_t lut_bytes[64];
  for (int i = 0; i < 64; ++i) lut_bytes[i] = kOffsetCodes[i & 15];
  const __m512i lut = _mm512_load_si512(lut_bytes);
  const __m512i sidx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __mmask64 tail_mask = (kNb % 4) ? (~0ull >> (64 - 16 * (kNb % 4))) : ~0ull;
  const float* dh = reinterpret_cast<const float*>(act + dh_offset(1));
  const uint8_t* end = blocks + rows / 4 * L::kTileBytes;
  const int64_t pf_tile = G == 0 ? 4 * kNb * 16 : L::kTileBytes;
  alignas(64) float sb[4 * kNg * 4];
  if (dist > 0)
    prefetch_first<kHint>(blocks, end, dist, G == 0 ? scales : nullptr, scales + rows * kNb);
  for (int64_t r = 0; r < rows; r += 4) {
    const uint8_t* tile = blocks + r / 4 * L::kTileBytes;
    if (G == 0 && dist > 0 &&
        r + 4 < rows) {  // the next tile's scales: 1 line as the library, or all
      for (int64_t o = 0; o < (g_all_scales ? 4 * kNb : 1); o += 64)
        __builtin_prefetch(scales + (r + 4) * kNb + o, 0, kHint);
    }
    if (G == 0 && far > 0 && r + 4 * (far / pf_tile) < rows) {
      const uint8_t* ps = scales + (r + 4 * (far / pf_tile)) * kNb;
      for (int64_t o = 0; o < 4 * kNb; o += 64) __builtin_prefetch(ps + o, 0, 2);
    }
    const uint8_t* sc[4] = {
        L::scales(tile, scales + r * kNb, 0), L::scales(tile, scales + r * kNb, 1),
        L::scales(tile, scales + r * kNb, 2), L::scales(tile, scales + r * kNb, 3)};
    tile_scales(dh, sc, sb);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
    for (int64_t g = 0; g < kNg; ++g) {
      if (dist > 0) prefetch_step<kHint>(tile, pf_tile, dist, g, kNg, end);
      if (far > 0) prefetch_step<2>(tile, pf_tile, far, g, kNg, end);
      const bool tail = (g + 1) * 4 > kNb;
      const __m512i x0lo = _mm512_load_si512(act + q_offset(0) + g * 128);
      const __m512i x0hi = _mm512_load_si512(act + q_offset(0) + g * 128 + 64);
      const __m512i x1lo = _mm512_load_si512(act + q_offset(1) + g * 128);
      const __m512i x1hi = _mm512_load_si512(act + q_offset(1) + g * 128 + 64);
      const __m512i c2 = _mm512_load_si512(act + corr_offset(kForm == 0 ? 0 : 2) + g * 64);
      const __m512i c3 = _mm512_load_si512(act + corr_offset(kForm == 0 ? 1 : 3) + g * 64);
      for (int j = 0; j < 4; ++j) {
        const uint8_t* p = L::blk(tile, 4 * g, j);
        const __m512i v = tail ? _mm512_maskz_loadu_epi8(tail_mask, p) : _mm512_loadu_si512(p);
        const __m512i lo = _mm512_permutexvar_epi8(v, lut);
        // VPMULTISHIFTQB: byte j of each qword from bits 8j + 4 on, the high nibble of byte j (the
        // bits above it, the next byte's low nibble, do not matter to the 16-periodic table).
        const __m512i vh =
            kForm == 2 ? _mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x3c342c241c140c04ll), v)
                       : _mm512_srli_epi16(v, 4);
        const __m512i hi = _mm512_permutexvar_epi8(vh, lut);
        __m512i a = _mm512_dpbusd_epi32(c2, lo, x0lo);
        a = _mm512_dpbusd_epi32(a, hi, x0hi);
        a = kForm == 0 ? _mm512_add_epi32(_mm512_slli_epi32(a, 8), c3)
                       : _mm512_shldi_epi32(a, c3, 8);
        a = _mm512_dpbusd_epi32(a, lo, x1lo);
        a = _mm512_dpbusd_epi32(a, hi, x1hi);
        const __m512 s = _mm512_permutexvar_ps(
            sidx, _mm512_castps128_ps512(_mm_loadu_ps(sb + j * kNg * 4 + g * 4)));
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, acc[j]);
      }
    }
    for (int j = 0; j < 4; ++j) {
      const __m512 v = acc[j];
      const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
      out[r + j] = sum8(_mm512_castps512_ps256(h));
    }
  }
}

// int8 x2 on the checkpoint layout in another loop order: RR consecutive rows at a time (RR = 1:
// each row's 1440 code bytes, then the next row's, one sequential stream; the activations and
// corrections reloaded from L1 per row), the scales of the RR rows per tile as the library's
// row_scales; software prefetch `dist` bytes ahead of the tile in stream order (0: none, the
// hardware prefetchers alone). Per row the same sums in the same order as the library: its bits.
template <int RR, int kHint>
LAB_AVX512 void gemv_i8_rr(const uint8_t* act, const uint8_t* blocks, const uint8_t* scales,
                           int64_t rows, float* out, int64_t dist, int64_t) {
  alignas(64) uint8_t lut_bytes[64];
  for (int i = 0; i < 64; ++i) lut_bytes[i] = kOffsetCodes[i & 15];
  const __m512i lut = _mm512_load_si512(lut_bytes);
  const __m512i sidx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __mmask64 tail_mask = (kNb % 4) ? (~0ull >> (64 - 16 * (kNb % 4))) : ~0ull;
  const float* dh = reinterpret_cast<const float*>(act + dh_offset(1));
  const uint8_t* end = blocks + rows * kNb * 16;
  constexpr int64_t kTile = RR * kNb * 16;
  alignas(64) float sb[4 * kNg * 4];
  if (dist > 0) prefetch_first<kHint>(blocks, end, dist, nullptr, nullptr);
  for (int64_t r = 0; r < rows; r += RR) {
    const uint8_t* tile = blocks + r * kNb * 16;
    for (int j = 0; j < RR; ++j) row_scales(dh, scales + (r + j) * kNb, sb + j * kNg * 4);
    __m512 acc[RR];
    for (int j = 0; j < RR; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t g = 0; g < kNg; ++g) {
      if (dist > 0) prefetch_step<kHint>(tile, kTile, dist, g, kNg, end);
      const bool tail = (g + 1) * 4 > kNb;
      const __m512i x0lo = _mm512_load_si512(act + q_offset(0) + g * 128);
      const __m512i x0hi = _mm512_load_si512(act + q_offset(0) + g * 128 + 64);
      const __m512i x1lo = _mm512_load_si512(act + q_offset(1) + g * 128);
      const __m512i x1hi = _mm512_load_si512(act + q_offset(1) + g * 128 + 64);
      const __m512i c2 = _mm512_load_si512(act + corr_offset(2) + g * 64);
      const __m512i c3 = _mm512_load_si512(act + corr_offset(3) + g * 64);
      for (int j = 0; j < RR; ++j) {
        const uint8_t* p = tile + j * kNb * 16 + g * 64;
        const __m512i v = tail ? _mm512_maskz_loadu_epi8(tail_mask, p) : _mm512_loadu_si512(p);
        const __m512i lo = _mm512_permutexvar_epi8(v, lut);
        const __m512i hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
        __m512i a = _mm512_dpbusd_epi32(c2, lo, x0lo);
        a = _mm512_dpbusd_epi32(a, hi, x0hi);
        a = _mm512_shldi_epi32(a, c3, 8);
        a = _mm512_dpbusd_epi32(a, lo, x1lo);
        a = _mm512_dpbusd_epi32(a, hi, x1hi);
        const __m512 s = _mm512_permutexvar_ps(
            sidx, _mm512_castps128_ps512(_mm_loadu_ps(sb + j * kNg * 4 + g * 4)));
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, acc[j]);
      }
    }
    for (int j = 0; j < RR; ++j) {
      const __m512 v = acc[j];
      const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
      out[r + j] = sum8(_mm512_castps512_ps256(h));
    }
  }
}

// int8 x2 on the checkpoint layout, RR rows at a time that are NOT neighbours: a call's rows split
// into RR runs of q = rows / RR consecutive rows, the tile i taking row i of each run (rows i, i +
// q,
// ...), so each of the RR code streams goes forward through its own pages (the neighbouring rows of
// a 4-row tile are 1440 bytes apart: 4 interleaved streams in the same 4 KB pages); the rows left
// (rows % RR) one at a time. Software prefetch `dist` bytes ahead in each stream (0: none). Per row
// the library's sums in its order: its bits.
template <int RR, int kHint>
LAB_AVX512 void gemv_i8_split(const uint8_t* act, const uint8_t* blocks, const uint8_t* scales,
                              int64_t rows, float* out, int64_t dist, int64_t) {
  alignas(64) uint8_t lut_bytes[64];
  for (int i = 0; i < 64; ++i) lut_bytes[i] = kOffsetCodes[i & 15];
  const __m512i lut = _mm512_load_si512(lut_bytes);
  const __m512i sidx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  const __mmask64 tail_mask = (kNb % 4) ? (~0ull >> (64 - 16 * (kNb % 4))) : ~0ull;
  const float* dh = reinterpret_cast<const float*>(act + dh_offset(1));
  const uint8_t* end = blocks + rows * kNb * 16;
  alignas(64) float sb[4 * kNg * 4];
  const int64_t q = rows / RR;
  auto tile = [&](const int64_t* rr, auto nrows) LAB_AVX512 __attribute__((always_inline)) {
    constexpr int N = decltype(nrows)::value;
    const uint8_t* w[N];
    for (int j = 0; j < N; ++j) {
      w[j] = blocks + rr[j] * kNb * 16;
      row_scales(dh, scales + rr[j] * kNb, sb + j * kNg * 4);
    }
    __m512 acc[N];
    for (int j = 0; j < N; ++j) acc[j] = _mm512_setzero_ps();
    for (int64_t g = 0; g < kNg; ++g) {
      const bool tail = (g + 1) * 4 > kNb;
      const __m512i x0lo = _mm512_load_si512(act + q_offset(0) + g * 128);
      const __m512i x0hi = _mm512_load_si512(act + q_offset(0) + g * 128 + 64);
      const __m512i x1lo = _mm512_load_si512(act + q_offset(1) + g * 128);
      const __m512i x1hi = _mm512_load_si512(act + q_offset(1) + g * 128 + 64);
      const __m512i c2 = _mm512_load_si512(act + corr_offset(2) + g * 64);
      const __m512i c3 = _mm512_load_si512(act + corr_offset(3) + g * 64);
      for (int j = 0; j < N; ++j) {
        const uint8_t* p = w[j] + g * 64;
        if (dist > 0 && p + dist < end) __builtin_prefetch(p + dist, 0, kHint);
        const __m512i v = tail ? _mm512_maskz_loadu_epi8(tail_mask, p) : _mm512_loadu_si512(p);
        const __m512i lo = _mm512_permutexvar_epi8(v, lut);
        const __m512i hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
        __m512i a = _mm512_dpbusd_epi32(c2, lo, x0lo);
        a = _mm512_dpbusd_epi32(a, hi, x0hi);
        a = _mm512_shldi_epi32(a, c3, 8);
        a = _mm512_dpbusd_epi32(a, lo, x1lo);
        a = _mm512_dpbusd_epi32(a, hi, x1hi);
        const __m512 s = _mm512_permutexvar_ps(
            sidx, _mm512_castps128_ps512(_mm_loadu_ps(sb + j * kNg * 4 + g * 4)));
        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), s, acc[j]);
      }
    }
    for (int j = 0; j < N; ++j) {
      const __m512 v = acc[j];
      const __m512 h = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
      out[rr[j]] = sum8(_mm512_castps512_ps256(h));
    }
  };
  for (int64_t i = 0; i < q; ++i) {
    int64_t rr[RR];
    for (int j = 0; j < RR; ++j) rr[j] = i + j * q;
    tile(rr, std::integral_constant<int, RR>{});
  }
  for (int64_t r = RR * q; r < rows; ++r) tile(&r, std::integral_constant<int, 1>{});
}

// The same sums with 512-bit loads (what -march=native makes of read_bandwidth.c's loop).
LAB_AVX512 uint64_t sum_u64_avx512(const uint64_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 8));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 16));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 24));
  }
  uint64_t s = static_cast<uint64_t>(_mm512_reduce_add_epi64(
      _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
  for (; i < n; ++i) s += p[i];
  return s;
}

// One kernel variant: rows [0, rows) of a call starting at tile `t` (its layout's pool) -> out.
struct Variant {
  std::string name;
  int layout;               // 0 checkpoint, 1 or 4 repacked
  int64_t every = 1;        // g_every while it runs
  bool all_scales = false;  // g_all_scales while it runs
  std::function<void(const uint8_t*, const uint8_t*, int64_t, float*)> run;
  std::vector<double> gbs[2] = {};  // per round: 1 thread, all threads
  int64_t call_rows = 64;           // rows per call (the backend's decode tasks: 64)
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, rounds = 3;
  double seconds = 0.5;
  int64_t pool_mb = 1024;
  bool thp = false, hot = false;
  std::string only;
  int64_t offset = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--pool-mb" && i + 1 < argc) {
      pool_mb = std::atoll(argv[++i]);
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--thp") {
      thp = true;
    } else if (a == "--hot") {
      hot = true;
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (a == "--offset" && i + 1 < argc) {
      offset = std::atoll(argv[++i]);
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--threads N] [--seconds S] [--pool-mb MB] [--rounds R] [--thp] [--hot] "
          "[--only 'SUB1|SUB2|...'] [--offset B]\n",
          argv[0]);
      return 2;
    }
  }
  if (threads < 1 || seconds <= 0 || pool_mb < 256 || rounds < 1 || offset < 0 || offset > 56 ||
      offset % 8 != 0) {
    std::fprintf(stderr,
                 "bad arguments (threads >= 1, seconds > 0, pool-mb >= 256, rounds >= 1, offset one of "
                 "0, 8, ..., 56)\n");
    return 2;
  }
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512vbmi2") || !__builtin_cpu_supports("avx512vnni") ||
      !gptoss::cpu_fast::mxfp4_i8_usable()) {
    std::fprintf(stderr, "this lab needs AVX-512 with VNNI, VBMI and VBMI2\n");
    return 1;
  }
  gptoss::cpu_fast::SpinPool pool(threads);
  std::printf("threads %d, SIMD target %s, int8 %s, load at start %s\n", threads,
              gptoss::cpu_fast::simd_target(), gptoss::cpu_fast::mxfp4_i8_target(),
              load_avg().c_str());

  std::vector<float> x(kCols), xp(kCols);
  for (int64_t i = 0; i < kCols; ++i)
    x[i] = 0.05f * static_cast<float>(std::sin(0.3 * static_cast<double>(i)));
  gptoss::cpu_fast::to_chunk_order(x.data(), kCols, xp.data());
  const int64_t act_bytes = (gptoss::cpu_fast::mxfp4_i8_act_bytes(kCols) + 63) / 64 * 64;
  auto* act = static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(act_bytes)));
  gptoss::cpu_fast::quantize_mxfp4_i8_act(x.data(), kCols, act);

  // Pools: the checkpoint layout (blocks then scales), and the same rows repacked with G = 1 and 4.
  const int64_t pool_rows = pool_mb * 1000000 / (kNb * 17) / 64 * 64;
  const size_t pb = static_cast<size_t>(pool_rows * kNb * 16),
               ps = static_cast<size_t>(pool_rows * kNb);
  auto map = [thp](size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "cannot map %zu bytes\n", bytes);
      std::exit(1);
    }
    if (thp) madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<uint8_t*>(p);
  };
  uint8_t* raw = map(pb + ps + 64);
  uint8_t* mem = raw + offset;
  fill_mxfp4(mem, pb, false, 0xabcdefull);
  fill_mxfp4(mem + pb, ps, true, 0x777ull);
  const size_t r1_bytes = static_cast<size_t>(pool_rows / 4 * Layout<1>::kTileBytes);
  const size_t r4_bytes = static_cast<size_t>(pool_rows / 4 * Layout<4>::kTileBytes);
  uint8_t* rep1 = map(r1_bytes);
  uint8_t* rep4 = map(r4_bytes);
  repack<1>(mem, mem + pb, pool_rows, rep1);
  repack<4>(mem, mem + pb, pool_rows, rep4);
  std::printf(
      "pool: %lld rows x %lld cols: checkpoint %.1f MB (at +%lld bytes), repacked G=1 %.1f MB, G=4 %.1f MB\n",
      static_cast<long long>(pool_rows), static_cast<long long>(kCols), (pb + ps) / 1e6,
      static_cast<long long>(offset), r1_bytes / 1e6, r4_bytes / 1e6);
  std::printf("pages (%s): checkpoint %s; G=1 %s; G=4 %s\n\n", thp ? "MADV_HUGEPAGE" : "no advice",
              gptoss::bench::smaps_pages(raw).c_str(), gptoss::bench::smaps_pages(rep1).c_str(),
              gptoss::bench::smaps_pages(rep4).c_str());

  const int64_t tile0 = 4 * kNb * 16;  // a checkpoint tile's block bytes (5760)
  std::vector<Variant> vs;
  auto f32 = [&](const std::string& name, int layout, int hint, int64_t dist, int64_t far = 0,
                 int64_t every = 1) {
    Variant v{name, layout, every, false, nullptr};
    using Fn =
        void (*)(const float*, const uint8_t*, const uint8_t*, int64_t, float*, int64_t, int64_t);
    Fn fn = nullptr;
    const Fn t0[3] = {gemv_f32<0, 3>, gemv_f32<1, 3>, gemv_f32<4, 3>};
    const Fn t1[3] = {gemv_f32<0, 2>, gemv_f32<1, 2>, gemv_f32<4, 2>};
    const Fn t2[3] = {gemv_f32<0, 1>, gemv_f32<1, 1>, gemv_f32<4, 1>};
    const Fn nta[3] = {gemv_f32<0, 0>, gemv_f32<1, 0>, gemv_f32<4, 0>};
    const int li = layout == 0 ? 0 : layout == 1 ? 1 : 2;
    fn = hint == 3 ? t0[li] : hint == 2 ? t1[li] : hint == 1 ? t2[li] : nta[li];
    v.run = [&, fn, dist, far](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
      fn(xp.data(), b, s, rows, o, dist, far);
    };
    vs.push_back(std::move(v));
  };
  auto i8 = [&](const std::string& name, int layout, int hint, int64_t dist, int64_t far = 0,
                int64_t every = 1, int form = 1) {
    Variant v{name, layout, every, false, nullptr};
    using Fn =
        void (*)(const uint8_t*, const uint8_t*, const uint8_t*, int64_t, float*, int64_t, int64_t);
    Fn fn = form != 1     ? (form == 0 ? gemv_i8<0, 3, 0> : gemv_i8<0, 3, 2>)
            : layout == 0 ? (hint == 3   ? gemv_i8<0, 3>
                             : hint == 2 ? gemv_i8<0, 2>
                                         : gemv_i8<0, 0>)
                          : (hint == 3   ? gemv_i8<4, 3>
                             : hint == 2 ? gemv_i8<4, 2>
                                         : gemv_i8<4, 0>);
    v.run = [&, fn, dist, far](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
      fn(act, b, s, rows, o, dist, far);
    };
    vs.push_back(std::move(v));
  };
  vs.push_back({"f32 library gemv_mxfp4 (checkpoint, next tile T0)",
                0,
                1,
                false,
                [&](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
                  gptoss::cpu_fast::gemv_mxfp4(xp.data(), b, s, kCols, rows, o);
                },
                {}});
  for (const int64_t rows : {256, 1440}) {  // fewer, longer calls (each call's first tile waits)
    vs.push_back(vs.back());
    vs.back().call_rows = rows;
    vs.back().name = "f32 library gemv_mxfp4, " + std::to_string(rows) + "-row calls";
  }
  f32("f32 checkpoint, next tile T0 (lab copy)", 0, 3, tile0);
  f32("f32 checkpoint, next tile T0, every 2nd line", 0, 3, tile0, 0, 2);
  f32("f32 checkpoint, no software prefetch", 0, 3, 0);
  f32("f32 checkpoint, next tile T1", 0, 2, tile0);
  f32("f32 checkpoint, next tile T2", 0, 1, tile0);
  f32("f32 checkpoint, next tile NTA", 0, 0, tile0);
  f32("f32 checkpoint, 2 tiles ahead T0", 0, 3, 2 * tile0);
  f32("f32 checkpoint, 4 tiles ahead T0", 0, 3, 4 * tile0);
  f32("f32 checkpoint, next tile T0 + 8 tiles ahead T1", 0, 3, tile0, 8 * tile0);
  f32("f32 checkpoint, 4 tiles ahead T1 only", 0, 3, 0, 4 * tile0);
  f32("f32 repacked G=1, no software prefetch", 1, 3, 0);
  f32("f32 repacked G=1, next tile T0", 1, 3, Layout<1>::kTileBytes);
  f32("f32 repacked G=1, next tile T0, every 2nd line", 1, 3, Layout<1>::kTileBytes, 0, 2);
  f32("f32 repacked G=1, 2 tiles ahead T0", 1, 3, 2 * Layout<1>::kTileBytes);
  f32("f32 repacked G=1, 2048 B ahead T0", 1, 3, 2048);
  f32("f32 repacked G=1, next tile T0 + 4 tiles ahead T1", 1, 3, Layout<1>::kTileBytes,
      4 * Layout<1>::kTileBytes);
  f32("f32 repacked G=1, 4 tiles ahead T1 only", 1, 3, 0, 4 * Layout<1>::kTileBytes);
  f32("f32 repacked G=4, no software prefetch", 4, 3, 0);
  f32("f32 repacked G=4, next tile T0", 4, 3, Layout<4>::kTileBytes);
  vs.push_back({"int8 x2 library gemv_mxfp4_i8 (checkpoint, 2-row tiles, 4 KB ahead T0)",
                0,
                1,
                false,
                [&](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
                  const uint8_t* acts[1] = {act};
                  gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, 2, b, s, kCols, rows, o, 1);
                },
                {}});
  for (const int64_t rows : {256, 1440}) {
    vs.push_back(vs.back());
    vs.back().call_rows = rows;
    vs.back().name = "int8 x2 library gemv_mxfp4_i8, " + std::to_string(rows) + "-row calls";
  }
  // The library kernel with 1 activation part (GPTOSS_CPU_FAST_MOE_I8_PARTS=1) on the same quantized
  // vector (its first part, corr_0 and dh_0 are the 1-part layout's), as the model calls it.
  vs.push_back(vs.back());
  vs.back().name = "int8 x1 library gemv_mxfp4_i8, 1440-row calls";
  vs.back().run = [&](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
    const uint8_t* acts[1] = {act};
    gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, 1, b, s, kCols, rows, o, 1);
  };
  i8("int8 x2 checkpoint, next tile T0 (lab copy)", 0, 3, tile0);
  i8("int8 x2 checkpoint, next tile T0, lab form shift+add", 0, 3, tile0, 0, 1, 0);
  i8("int8 x2 checkpoint, next tile T0, lab form VPMULTISHIFTQB", 0, 3, tile0, 0, 1, 2);
  i8("int8 x2 checkpoint, next tile T0, all its scale lines", 0, 3, tile0);
  vs.back().all_scales = true;
  i8("int8 x2 checkpoint, next tile T0, every 2nd line", 0, 3, tile0, 0, 2);
  i8("int8 x2 checkpoint, no software prefetch", 0, 3, 0);
  i8("int8 x2 checkpoint, next tile T1", 0, 2, tile0);
  i8("int8 x2 checkpoint, next tile NTA", 0, 0, tile0);
  i8("int8 x2 checkpoint, 2 tiles ahead T0", 0, 3, 2 * tile0);
  i8("int8 x2 checkpoint, 4 tiles ahead T1 only", 0, 3, 0, 4 * tile0);
  auto i8rr = [&](const std::string& name, int rr, int hint, int64_t dist) {
    Variant v{name, 0, 1, false, nullptr};
    using Fn =
        void (*)(const uint8_t*, const uint8_t*, const uint8_t*, int64_t, float*, int64_t, int64_t);
    Fn fn = rr == 1   ? (hint == 3 ? gemv_i8_rr<1, 3> : gemv_i8_rr<1, 2>)
            : rr == 2 ? (hint == 3 ? gemv_i8_rr<2, 3> : gemv_i8_rr<2, 2>)
                      : (hint == 3 ? gemv_i8_rr<4, 3> : gemv_i8_rr<4, 2>);
    v.run = [&, fn, dist](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
      fn(act, b, s, rows, o, dist, 0);
    };
    vs.push_back(std::move(v));
  };
  i8rr("int8 x2 checkpoint RR=1, no software prefetch", 1, 3, 0);
  i8rr("int8 x2 checkpoint RR=1, 1 KB ahead T0", 1, 3, 1024);
  i8rr("int8 x2 checkpoint RR=1, 2 KB ahead T0", 1, 3, 2048);
  i8rr("int8 x2 checkpoint RR=1, 4 KB ahead T1", 1, 2, 4096);
  i8rr("int8 x2 checkpoint RR=2, no software prefetch", 2, 3, 0);
  i8rr("int8 x2 checkpoint RR=2, 2 KB ahead T0", 2, 3, 2048);
  i8rr("int8 x2 checkpoint RR=2, 1 KB ahead T0", 2, 3, 1024);
  i8rr("int8 x2 checkpoint RR=2, 4 KB ahead T0", 2, 3, 4096);
  i8rr("int8 x2 checkpoint RR=2, 2 KB ahead T1", 2, 2, 2048);
  i8rr("int8 x2 checkpoint RR=4, no software prefetch (lab)", 4, 3, 0);
  i8rr("int8 x2 checkpoint RR=4, 2 KB ahead T0", 4, 3, 2048);
  i8rr("int8 x2 checkpoint RR=4, 4 KB ahead T0", 4, 3, 4096);
  i8rr("int8 x2 checkpoint RR=2, 6 KB ahead T0", 2, 3, 6144);
  i8rr("int8 x2 checkpoint RR=4, 8 KB ahead T0", 4, 3, 8192);
  i8rr("int8 x2 checkpoint RR=1, 4 KB ahead T0", 1, 3, 4096);
  auto i8split = [&](const std::string& name, int rr, int64_t dist) {
    Variant v{name, 0, 1, false, nullptr};
    using Fn =
        void (*)(const uint8_t*, const uint8_t*, const uint8_t*, int64_t, float*, int64_t, int64_t);
    Fn fn = rr == 2 ? gemv_i8_split<2, 3> : rr == 3 ? gemv_i8_split<3, 3> : gemv_i8_split<4, 3>;
    v.run = [&, fn, dist](const uint8_t* b, const uint8_t* s, int64_t rows, float* o) {
      fn(act, b, s, rows, o, dist, 0);
    };
    vs.push_back(std::move(v));
  };
  i8split("int8 x2 checkpoint split 4 runs, no software prefetch", 4, 0);
  i8split("int8 x2 checkpoint split 4 runs, 512 B ahead T0", 4, 512);
  i8split("int8 x2 checkpoint split 4 runs, 1 KB ahead T0", 4, 1024);
  i8split("int8 x2 checkpoint split 3 runs, no software prefetch", 3, 0);
  i8split("int8 x2 checkpoint split 2 runs, no software prefetch", 2, 0);
  i8("int8 x2 repacked G=4, no software prefetch", 4, 3, 0);
  i8("int8 x2 repacked G=4, next tile T0", 4, 3, Layout<4>::kTileBytes);
  i8("int8 x2 repacked G=4, next tile T0, every 2nd line", 4, 3, Layout<4>::kTileBytes, 0, 2);
  i8("int8 x2 repacked G=4, 2 tiles ahead T0", 4, 3, 2 * Layout<4>::kTileBytes);
  i8("int8 x2 repacked G=4, 2048 B ahead T0", 4, 3, 2048);
  i8("int8 x2 repacked G=4, next tile T0 + 4 tiles ahead T1", 4, 3, Layout<4>::kTileBytes,
     4 * Layout<4>::kTileBytes);

  if (!only.empty()) {  // keep the variants whose name contains one of the '|'-separated parts
    std::vector<std::string> parts;
    for (size_t a = 0; a <= only.size();) {
      const size_t e = std::min(only.find('|', a), only.size());
      if (e > a) parts.push_back(only.substr(a, e - a));
      a = e + 1;
    }
    std::vector<Variant> kept;
    for (Variant& v : vs) {
      for (const std::string& part : parts) {
        if (v.name.find(part) != std::string::npos) {
          kept.push_back(std::move(v));
          break;
        }
      }
    }
    vs = std::move(kept);
  }
  auto pool_of = [&](int layout) { return layout == 0 ? mem : layout == 1 ? rep1 : rep4; };
  auto tile_bytes = [&](int layout) {
    return layout == 0 ? tile0 : layout == 1 ? Layout<1>::kTileBytes : Layout<4>::kTileBytes;
  };

  // Bits: 64 rows at an offset; every f32 line equals gemv_mxfp4, every int8 line gemv_mxfp4_i8.
  {
    const int64_t r0 = 4096;
    std::vector<float> want_f(64), want_i(64), want_i1(64), got(64);
    gptoss::cpu_fast::gemv_mxfp4(xp.data(), mem + r0 * kNb * 16, mem + pb + r0 * kNb, kCols, 64,
                                 want_f.data());
    const uint8_t* acts[1] = {act};
    gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, 2, mem + r0 * kNb * 16, mem + pb + r0 * kNb, kCols, 64,
                                    want_i.data(), 1);
    gptoss::cpu_fast::gemv_mxfp4_i8(acts, 1, 1, mem + r0 * kNb * 16, mem + pb + r0 * kNb, kCols, 64,
                                    want_i1.data(), 1);
    for (Variant& v : vs) {
      g_every = v.every;
      g_all_scales = v.all_scales;
      const uint8_t* b =
          pool_of(v.layout) + (v.layout == 0 ? r0 * kNb * 16 : r0 / 4 * tile_bytes(v.layout));
      v.run(b, mem + pb + r0 * kNb, 64, got.data());
      const std::vector<float>& want = v.name.rfind("f32", 0) == 0      ? want_f
                                       : v.name.rfind("int8 x1", 0) == 0 ? want_i1
                                                                         : want_i;
      if (std::memcmp(got.data(), want.data(), 64 * sizeof(float)) != 0) {
        std::fprintf(stderr, "%s: not the library kernel's bits (row 0: %.9g vs %.9g)\n",
                     v.name.c_str(), got[0], want[0]);
        return 1;
      }
    }
    std::printf("bits: every line equals its library kernel's outputs (64 rows)\n\n");
  }

  std::vector<uint64_t> sink(static_cast<size_t>(threads));
  std::vector<std::vector<float>> outs(static_cast<size_t>(threads), std::vector<float>(2880));
  std::vector<double> read_gbs[2], read512_gbs[2];
  const int ns[2] = {1, threads};
  for (int round = 0; round < rounds; ++round) {
    for (int ni = 0; ni < (threads > 1 ? 2 : 1); ++ni) {
      const int n = ns[ni];
      const double s = time_best(seconds, [&] {
        pool.run(n, [&](int t) {
          const size_t w = (pb + ps) / 8, a = w * t / n, e = w * (t + 1) / n;
          sink[t] = sum_u64(reinterpret_cast<const uint64_t*>(raw) + a, e - a);
        });
      });
      read_gbs[ni].push_back(static_cast<double>(pb + ps) / s / 1e9);
      const double s512 = time_best(seconds, [&] {
        pool.run(n, [&](int t) {
          const size_t w = (pb + ps) / 8, a = w * t / n, e = w * (t + 1) / n;
          sink[t] = sum_u64_avx512(reinterpret_cast<const uint64_t*>(raw) + a, e - a);
        });
      });
      read512_gbs[ni].push_back(static_cast<double>(pb + ps) / s512 / 1e9);
    }
    // Each round starts at another variant, so that no variant always runs first or last.
    for (size_t vi = 0; vi < vs.size(); ++vi) {
      Variant& v = vs[(vi + static_cast<size_t>(round) * vs.size() / static_cast<size_t>(rounds)) %
                      vs.size()];
      g_every = v.every;
      g_all_scales = v.all_scales;
      const uint8_t* base = pool_of(v.layout);
      const int64_t tb = tile_bytes(v.layout);
      for (int ni = 0; ni < (threads > 1 ? 2 : 1); ++ni) {
        const int n = ns[ni];
        constexpr int kHotReps = 100;  // --hot: each thread's same 64 rows (~98 KB, in L2)
        if (hot) {
          const double s = time_best(seconds, [&] {
            pool.run(n, [&](int t) {
              const int64_t r = 4096 * (t + 1);
              const uint8_t* b = v.layout == 0 ? base + r * kNb * 16 : base + r / 4 * tb;
              for (int k = 0; k < kHotReps; ++k) v.run(b, mem + pb + r * kNb, 64, outs[t].data());
            });
          });
          v.gbs[ni].push_back(static_cast<double>(kHotReps) * n * 64 * kNb * 17 / s / 1e9);
          continue;
        }
        const double s = time_best(seconds, [&] {
          pool.run(n, [&](int t) {
            const int64_t a = pool_rows / 64 * t / n * 64, e = pool_rows / 64 * (t + 1) / n * 64;
            for (int64_t r = a; r < e; r += v.call_rows) {
              const uint8_t* b = v.layout == 0 ? base + r * kNb * 16 : base + r / 4 * tb;
              v.run(b, mem + pb + r * kNb, std::min(v.call_rows, e - r), outs[t].data());
            }
          });
        });
        v.gbs[ni].push_back(static_cast<double>(pb + ps) / s /
                            1e9);  // MXFP4 bytes (blocks + scales)
      }
    }
    std::printf("round %d done (load %s)\n", round + 1, load_avg().c_str());
    std::fflush(stdout);
  }
  auto cells = [](const std::vector<double>& g) {
    std::string c;
    char buf[32];
    for (size_t i = 0; i < g.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%.2f", i ? " / " : "", g[i]);
      c += buf;
    }
    const double best = g.empty() ? 0.0 : *std::max_element(g.begin(), g.end());
    std::snprintf(buf, sizeof buf, " (best %.2f)", best);
    return c + buf;
  };
  std::printf(
      "\nGB/s of MXFP4 bytes (blocks + scales) %s, per round (best of %.2f s each), %d-row "
      "pool\n\n",
      hot ? "computed HOT (the same 64 rows per thread, in L2)" : "streamed", seconds,
      static_cast<int>(pool_rows));
  std::printf("| variant | 1 thread | %d threads |\n|---|---|---|\n", threads);
  std::printf("| plain read (uint64 sums, in process) | %s | %s |\n", cells(read_gbs[0]).c_str(),
              threads > 1 ? cells(read_gbs[1]).c_str() : "");
  std::printf("| plain read (uint64 sums, 512-bit loads, in process) | %s | %s |\n",
              cells(read512_gbs[0]).c_str(), threads > 1 ? cells(read512_gbs[1]).c_str() : "");
  for (const Variant& v : vs) {
    std::printf("| %s | %s | %s |\n", v.name.c_str(), cells(v.gbs[0]).c_str(),
                threads > 1 ? cells(v.gbs[1]).c_str() : "");
  }
  std::printf("\nload at end %s\n", load_avg().c_str());
  uint64_t all = 0;
  for (const uint64_t v : sink) all += v;
  if (all == 42) std::printf("\n");
  munmap(raw, pb + ps + 64);
  munmap(rep1, r1_bytes);
  munmap(rep4, r4_bytes);
  std::free(act);
  return 0;
}

#else
#include <cstdio>
int main() {
  std::printf("gptoss-bench-mxfp4-stream: x86-64 AVX-512 only\n");
  return 0;
}
#endif
