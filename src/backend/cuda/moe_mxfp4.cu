// MXFP4 expert GEMVs on tensor cores, reading the checkpoint's blocks/scales as they are.
//
// A warp owns 16 weight rows. Lane (g, t) = (lane / 4, lane % 4) loads, per chunk of 4 MXFP4 blocks,
// block 4c + t of rows g and g + 8 (16 bytes each; a group's 4 lanes read 64 contiguous bytes) and
// decodes it exactly to fp16. One m16n8k16 MMA consumes 4 elements of each lane's block, so an MMA
// mixes 4 blocks with different scales; the B operand keeps them apart: column n < 4 holds the input of
// block 4c + n only (the high fp16 half of x), column 4 + n its low half (x - hi), zero elsewhere. After
// the 8 MMAs of a chunk every accumulator column is one block's partial sum, multiplied by its E8M0
// scale in f32. With x split into two fp16 parts (x16.cuh) the products are exact and the sums f32: the
// result matches an f32 GEMV on the decoded weights. B operands are read straight from the x16 rows in
// global memory (a few KB, L1/L2-resident), so the kernels have no prologue.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/x16.cuh"

namespace gptoss::cuda {
namespace {

// SwiGLU outputs are bounded by the clamps (|h| <= limit * (limit + 1) = 56 for limit 7), so the gate_up
// kernel stores h in x16 form with this fixed scale (no reduction over the row needed).
constexpr int kHScaleLog2 = 8;

__global__ void stage_x16_kernel(const float* __restrict__ x, int x_stride, int cols, uint32_t* __restrict__ x16,
                                 float* __restrict__ inv) {
  __shared__ float red[32];
  const int r = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* xr = x + static_cast<size_t>(r) * x_stride;
  float mx = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, fabsf(xr[c]));
  mx = warp_max(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) mx = fmaxf(mx, red[w]);
  const int p = x16_exponent(mx);
  const float up = ldexpf(1.0f, p);
  uint32_t* row16 = x16 + static_cast<size_t>(r) * x16_row_words(cols);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) x16_store(row16, c, xr[c] * up);
  if (threadIdx.x == 0) inv[r] = ldexpf(1.0f, -p);
}

__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

struct ChunkData {
  uint4 wg, wg8;       // this lane's block of rows g and g + 8
  uint32_t sg, sg8;    // scale bytes of blocks sb and sb + 1 (bits 0-7, 8-15) for rows g and g + 8
};

// kFast: the whole chunk lies inside the row and the row's scale bytes are 2-byte aligned (even
// block count), so no bounds checks and one 16-bit load per row for the two scales.
template <bool kFast>
__device__ __forceinline__ ChunkData load_chunk(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                                const uint8_t* sg8, int nb, int c, int t) {
  ChunkData d;
  const int blk = 4 * c + t, sb = 4 * c + 2 * (t & 1);
  if (kFast) {
    d.wg = ld_stream(bg + blk * 16);
    d.wg8 = ld_stream(bg8 + blk * 16);
    d.sg = __ldg(reinterpret_cast<const uint16_t*>(sg + sb));
    d.sg8 = __ldg(reinterpret_cast<const uint16_t*>(sg8 + sb));
  } else {
    const bool in = blk < nb;
    d.wg = in ? ld_stream(bg + blk * 16) : make_uint4(0, 0, 0, 0);
    d.wg8 = in ? ld_stream(bg8 + blk * 16) : make_uint4(0, 0, 0, 0);
    d.sg = (sb < nb ? uint32_t(__ldg(sg + sb)) : 0u) | (sb + 1 < nb ? uint32_t(__ldg(sg + sb + 1)) << 8 : 0u);
    d.sg8 = (sb < nb ? uint32_t(__ldg(sg8 + sb)) : 0u) | (sb + 1 < nb ? uint32_t(__ldg(sg8 + sb + 1)) << 8 : 0u);
  }
  return d;
}

// E8M0 bytes 0 and 1 of s -> 2^(byte - 127). A scale byte of 0 (2^-127) is taken as 0: its block's
// values are below 4e-38, and this keeps the decode to one shift and mask.
__device__ __forceinline__ float scale_lo(uint32_t s) { return __uint_as_float((s << 23) & 0x7f800000u); }
__device__ __forceinline__ float scale_hi(uint32_t s) { return __uint_as_float((s << 15) & 0x7f800000u); }

// kTab0 of the E2M1 magnitude table, meant to stay in a register: written as a plain constant, ptxas
// re-created it from a uniform register before every PRMT (8 extra instructions per chunk). The
// two-tile kernels keep it; the one-tile kernels (at 121 registers) still re-create it.
__device__ __forceinline__ uint32_t e2m1_tab0() {
  uint32_t r;
  asm("mov.b32 %0, 0x3E3C3800;" : "=r"(r));
  return r;
}

// One chunk (4 MXFP4 blocks x 16 rows) of each of kTiles row tiles (16 rows apart) against the same
// B operands: the B loads and the chunk's bookkeeping are shared, and the tiles' MMA chains are
// independent.
// kDirect (MoE variants 5, 6; NOTES v15): the E2M1 nibbles' bits placed straight into fp16 fields.
// A nibble s e1 e0 m with e1 e0 m at fp16 bits 9-11 and s at bit 15 is the fp16 value E2M1 * 2^-14
// exactly (normal codes: 2^(e-15) (1 + m/2); e = 0: the subnormal m * 2^-15), so the accumulators hold
// 2^-14 times v13's sums and the caller multiplies the result by 2^14. Per word and row 11 shift / LOP3
// instructions for the 4 operand registers (elements (k, k+4) as in v13): te holds the even nibbles'
// magnitudes at bits 8i..8i+2 and their signs at 8i+6, to the odd ones' at 8i+1..8i+3 and 8i+7.
// (a & c) | (b & ~c) in one LOP3 (written as C, ptxas made it two or three).
__device__ __forceinline__ uint32_t bit_select(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

__device__ __forceinline__ void e2m1_direct(uint32_t w, uint32_t (&o)[4]) {
  constexpr uint32_t kField = 0x8E008E00u;
  const uint32_t te = bit_select(w, w << 3, 0x07070707u);
  const uint32_t to = bit_select(w >> 3, w, 0x0E0E0E0Eu);
  o[0] = (te << 9) & kField;  // nibbles 0, 4
  o[1] = (to << 8) & kField;  // 1, 5
  o[2] = (te << 1) & kField;  // 2, 6
  o[3] = to & kField;         // 3, 7
}

template <bool kFast, int kTiles, bool kDirect = false>
__device__ __forceinline__ void mma_chunk(const ChunkData (&d)[kTiles], const uint32_t* x16, int nb, int c, int lane,
                                          uint32_t tab0, float (&acc)[kTiles][2]) {
  const int g = lane >> 2, t = lane & 3;
  const bool feeds_b = (g & 3) == t && (kFast || 4 * c + t < nb);
  // Lane (g, t) with g % 4 == t supplies column g of B: the hi (g < 4) or lo half of block 4c + t.
  uint32_t bw[16];
  const uint4* xb = reinterpret_cast<const uint4*>(x16 + (4 * c + t) * kX16BlockWords + (g >= 4 ? 16 : 0));
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint4 v = feeds_b ? xb[i] : make_uint4(0, 0, 0, 0);
    bw[4 * i] = v.x, bw[4 * i + 1] = v.y, bw[4 * i + 2] = v.z, bw[4 * i + 3] = v.w;
  }
  constexpr uint32_t kTab1 = 0x46444240u;  // fp16 high bytes of 0, .5, 1, 1.5 (tab0) | 2, 3, 4, 6
  constexpr uint32_t kSpread[4] = {0x4808u, 0x5818u, 0x6828u, 0x7838u};
  float cacc[kTiles][4];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) cacc[j][0] = cacc[j][1] = cacc[j][2] = cacc[j][3] = 0.0f;
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const uint32_t wg = w == 0 ? d[j].wg.x : w == 1 ? d[j].wg.y : w == 2 ? d[j].wg.z : d[j].wg.w;
      const uint32_t wg8 = w == 0 ? d[j].wg8.x : w == 1 ? d[j].wg8.y : w == 2 ? d[j].wg8.z : d[j].wg8.w;
      if constexpr (kDirect) {
        uint32_t og[4], og8[4];
        e2m1_direct(wg, og);
        e2m1_direct(wg8, og8);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const uint32_t a[4] = {og[2 * half], og8[2 * half], og[2 * half + 1], og8[2 * half + 1]};
          mma_f16_16816(cacc[j], a, bw[4 * w + 2 * half], bw[4 * w + 2 * half + 1]);
        }
        continue;
      }
      // mxfp4_word_to_half2x4 for both rows, written straight into the MMA operands.
      const uint32_t selg = wg & 0x77777777u, selg8 = wg8 & 0x77777777u;
      const uint32_t log = prmt(tab0, kTab1, selg), hig = prmt(tab0, kTab1, selg >> 16);
      const uint32_t log8 = prmt(tab0, kTab1, selg8), hig8 = prmt(tab0, kTab1, selg8 >> 16);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int k1 = 2 * half, k2 = 2 * half + 1;
        uint32_t a[4];
        a[0] = prmt(log, hig, kSpread[k1]) | ((wg << (12 - 4 * k1)) & 0x80008000u);
        a[1] = prmt(log8, hig8, kSpread[k1]) | ((wg8 << (12 - 4 * k1)) & 0x80008000u);
        a[2] = prmt(log, hig, kSpread[k2]) | ((k2 == 3 ? wg : wg << (12 - 4 * k2)) & 0x80008000u);
        a[3] = prmt(log8, hig8, kSpread[k2]) | ((k2 == 3 ? wg8 : wg8 << (12 - 4 * k2)) & 0x80008000u);
        // Elements (k, k+4) of word w; B words 4w + 2half (+1) hold the same inputs.
        mma_f16_16816(cacc[j], a, bw[4 * w + 2 * half], bw[4 * w + 2 * half + 1]);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
    acc[j][0] = fmaf(cacc[j][0], scale_lo(d[j].sg), acc[j][0]);
    acc[j][0] = fmaf(cacc[j][1], scale_hi(d[j].sg), acc[j][0]);
    acc[j][1] = fmaf(cacc[j][2], scale_lo(d[j].sg8), acc[j][1]);
    acc[j][1] = fmaf(cacc[j][3], scale_hi(d[j].sg8), acc[j][1]);
  }
}

// `ready` runs once per warp, after the first batch's weight loads are issued: the block waits there
// for its x16 row to land in shared memory. kBatch chunks (of each tile) are in flight at once.
// The four lanes t = 0..3 of each row group g hold partial sums of the same accumulators (m16n8k16 C
// layout): every lane gets the quad's total.
template <int kTiles>
__device__ __forceinline__ void quad_sums(const float (&acc)[kTiles][2], float (&out)[kTiles][2]) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v = acc[j][h];
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      out[j][h] = v;
    }
  }
}

template <bool kFast, int kTiles, int kBatch, bool kDirect, typename Ready>
__device__ __forceinline__ void dot_chunks(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                           const uint8_t* sg8, size_t tile_bytes, int nb, int c0, int c1,
                                           const uint32_t* xs, int lane, uint32_t tab0, float (&acc)[kTiles][2],
                                           bool& waited, Ready&& ready) {
  const int t = lane & 3;
  const size_t tile_scales = tile_bytes / 16;
  for (int cb = c0; cb < c1; cb += kBatch) {
    ChunkData d[kBatch][kTiles];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        if (cb + i < c1) {
          d[i][j] = load_chunk<kFast>(bg + j * tile_bytes, bg8 + j * tile_bytes, sg + j * tile_scales,
                                      sg8 + j * tile_scales, nb, cb + i, t);
        }
      }
    }
    if (!waited) {
      ready();
      waited = true;
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (cb + i < c1) mma_chunk<kFast, kTiles, kDirect>(d[i], xs, nb, cb + i, lane, tab0, acc);
    }
  }
}

// Dot products of rows r0 + 16 j + g and r0 + 16 j + g + 8 (tile j < kTiles) with the x16 row in
// shared memory over chunks [c0, c1); the sums end up in every lane of the group (reduced over t).
template <int kTiles, int kBatch, bool kDirect, typename Ready>
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, const uint8_t* scales, int r0, int nb, int c0, int c1,
                                         const uint32_t* xs, float (&out)[kTiles][2], Ready&& ready) {
  const int lane = threadIdx.x & 31, g = lane >> 2;
  const uint8_t* bg = blocks + static_cast<size_t>(r0 + g) * nb * 16;
  const uint8_t* bg8 = bg + static_cast<size_t>(8) * nb * 16;
  const uint8_t* sg = scales + static_cast<size_t>(r0 + g) * nb;
  const uint8_t* sg8 = sg + static_cast<size_t>(8) * nb;
  const size_t tile_bytes = static_cast<size_t>(16) * nb * 16;
  const uint32_t tab0 = e2m1_tab0();
  float acc[kTiles][2];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) acc[j][0] = acc[j][1] = 0.0f;
  bool waited = false;
  const int full = (nb & 1) ? c0 : max(c0, min(c1, nb / 4));  // chunks [c0, full) take the fast path
  dot_chunks<true, kTiles, kBatch, kDirect>(bg, bg8, sg, sg8, tile_bytes, nb, c0, full, xs, lane, tab0, acc, waited,
                                            ready);
  dot_chunks<false, kTiles, kBatch, kDirect>(bg, bg8, sg, sg8, tile_bytes, nb, full, c1, xs, lane, tab0, acc, waited,
                                             ready);
  if (!waited) ready();
  quad_sums(acc, out);
  if constexpr (kDirect) {
#pragma unroll
    for (int j = 0; j < kTiles; ++j) out[j][0] *= 16384.0f, out[j][1] *= 16384.0f;  // the decode's 2^-14
  }
}

// Weights through shared memory (shapes with stages > 0): each warp streams its chunks through a ring
// of kStages slots with cp.async (16 bytes per request, L2 only), so the bytes in flight no longer
// live in registers. Lane (g, t) copies exactly the 16-byte pieces it later decodes (block 4c + t of
// rows g and g + 8 of each tile), so a lane waits only for its own copies (cp.async.wait_group) and
// the warp needs no barrier. Slot layout [stage][tile][row half][lane] x 16 bytes: a warp's reads and
// writes of one (tile, half) are 512 contiguous bytes. Blocks past the row's end are zero-filled
// (src-size 0); the scale bytes of all the warp's chunks are loaded into registers up front (two
// rows' 16-bit pairs packed in one word).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Scale bytes sb, sb + 1 of one row (bits 0-7, 8-15), zero past the row's end.
__device__ __forceinline__ uint32_t load_scale_pair(const uint8_t* s, int nb, int sb) {
  if ((nb & 1) == 0) return sb < nb ? uint32_t(__ldg(reinterpret_cast<const uint16_t*>(s + sb))) : 0u;
  return (sb < nb ? uint32_t(__ldg(s + sb)) : 0u) | (sb + 1 < nb ? uint32_t(__ldg(s + sb + 1)) << 8 : 0u);
}

template <int kTiles, int kStages, int kMaxChunks, typename Ready>
__device__ __forceinline__ void tile_dot_staged(const uint8_t* blocks, const uint8_t* scales, int r0, int nb, int c0,
                                                int c1, const uint32_t* xs, uint4* ring, float (&out)[kTiles][2],
                                                Ready&& ready) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const size_t row_bytes = static_cast<size_t>(nb) * 16;
  const uint8_t* bg = blocks + static_cast<size_t>(r0 + g) * row_bytes;
  const size_t tile_bytes = 16 * row_bytes;
  const uint8_t* sg = scales + static_cast<size_t>(r0 + g) * nb;
  const uint32_t ring_base = static_cast<uint32_t>(__cvta_generic_to_shared(ring)) + lane * 16;
  auto issue = [&](int c, int stage) {
    const int blk = 4 * c + t;
    const bool in = blk < nb;
    const uint8_t* src = bg + static_cast<size_t>(in ? blk : 0) * 16;
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        cp_async16(ring_base + ((stage * kTiles + j) * 2 + h) * 512, src + j * tile_bytes + h * 8 * row_bytes,
                   in ? 16u : 0u);
      }
    }
  };
#pragma unroll
  for (int s = 0; s < kStages; ++s) {
    if (c0 + s < c1) issue(c0 + s, s);
    cp_async_commit();
  }
  uint32_t sc[kMaxChunks][kTiles];  // rows g (bits 0-15) and g + 8 (16-31)
#pragma unroll
  for (int i = 0; i < kMaxChunks; ++i) {
    const int sb = 4 * (c0 + i) + 2 * (t & 1);
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const uint8_t* s0 = sg + static_cast<size_t>(16 * j) * nb;
      sc[i][j] = c0 + i < c1 ? load_scale_pair(s0, nb, sb) | load_scale_pair(s0 + 8 * nb, nb, sb) << 16 : 0u;
    }
  }
  cp_async_wait<kStages>();  // this thread's part of the x16 row (the group before the ring's)
  ready();
  const uint32_t tab0 = e2m1_tab0();
  float acc[kTiles][2];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) acc[j][0] = acc[j][1] = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxChunks; ++i) {
    if (c0 + i >= c1) break;
    cp_async_wait<kStages - 1>();
    const int stage = i % kStages;
    ChunkData d[kTiles];
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      d[j].wg = ring[((stage * kTiles + j) * 2) * 32 + lane];
      d[j].wg8 = ring[((stage * kTiles + j) * 2 + 1) * 32 + lane];
      d[j].sg = sc[i][j] & 0xffffu;
      d[j].sg8 = sc[i][j] >> 16;
    }
    mma_chunk<false, kTiles>(d, xs, nb, c0 + i, lane, tab0, acc);
    if (c0 + i + kStages < c1) issue(c0 + i + kStages, stage);
    cp_async_commit();
  }
  quad_sums(acc, out);
}

// Shared-memory bytes of one warp's ring.
__host__ __device__ __forceinline__ size_t ring_bytes(int tiles, int stages) {
  return static_cast<size_t>(stages) * tiles * 1024;
}

// Starts copying one x16 row (words) into shared memory (cp.async, 16 bytes per request).
__device__ __forceinline__ void copy_row_async(uint32_t* xs, const uint32_t* row, size_t words) {
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(xs));
  for (size_t i = threadIdx.x; i < words / 4; i += blockDim.x) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(base + static_cast<uint32_t>(i * 16)),
                 "l"(row + 4 * i));
  }
  asm volatile("cp.async.commit_group;");
}
__device__ __forceinline__ void wait_row() {
  asm volatile("cp.async.wait_all;" ::: "memory");
  __syncthreads();
}

// Warps that split one row tile's chunks so that each holds at most `per_warp` of them.
__host__ __device__ __forceinline__ int k_parts(int nb, int per_warp) {
  const int nch = (nb + 3) / 4;
  return min(8, (nch + per_warp - 1) / per_warp);
}

// kStages == 0: weights through registers, kBatch chunks in flight (tile_dot); otherwise through a
// per-warp ring of kStages chunks after the x16 row in shared memory, kBatch = most chunks per warp.
// `ready` (register path only) runs once the first weights are in flight and returns when the x16 row
// is in shared memory.
template <int kTiles, int kBatch, int kStages, bool kDirect, typename Ready>
__device__ __forceinline__ void tile_dot_any(const uint8_t* blocks, const uint8_t* scales, int r0, int nb, int c0, int c1,
                                             const uint32_t* xs, size_t xs_words, float (&out)[kTiles][2],
                                             Ready&& ready) {
  if constexpr (kStages == 0) {
    tile_dot<kTiles, kBatch, kDirect>(blocks, scales, r0, nb, c0, c1, xs, out, ready);
  } else {
    uint4* ring = reinterpret_cast<uint4*>(const_cast<uint32_t*>(xs) + xs_words) +
                  (threadIdx.x >> 5) * (ring_bytes(kTiles, kStages) / 16);
    tile_dot_staged<kTiles, kStages, kBatch>(blocks, scales, r0, nb, c0, c1, xs, ring, out, [] { __syncthreads(); });
  }
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

// grid (16-row tiles, slots): slot s = (token s / k, expert idx[s]); the block's warps split the
// columns (k_parts) and meet in shared memory.
template <int kTiles, int kBatch, int kStages, bool kDirect = false>
__global__ void __launch_bounds__(256)
    gate_up_kernel(const uint32_t* __restrict__ x16, const float* __restrict__ x_inv, const int32_t* __restrict__ idx,
                   int k, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                   const uint16_t* __restrict__ bias, int rows, int cols, float limit, float alpha,
                   float* __restrict__ h, uint32_t* __restrict__ h16) {
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16 * kTiles];
  const TimelineBlock timeline(kTimelineGateUp);
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  const int slot = blockIdx.y, t_tok = slot / k, e = idx[slot];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * 16 * kTiles;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = blockDim.x >> 5;
  copy_row_async(xs, x16 + static_cast<size_t>(t_tok) * x16_row_words(cols), x16_row_words(cols));
  float y[kTiles][2];
  tile_dot_any<kTiles, kBatch, kStages, kDirect>(blocks + static_cast<size_t>(e) * rows * nb * 16,
                                        scales + static_cast<size_t>(e) * rows * nb, r0, nb, warp * nch / parts,
                                        (warp + 1) * nch / parts, xs, x16_row_words(cols), y, wait_row);
  if (t == 0) {
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      part[warp][16 * j + g] = y[j][0];
      part[warp][16 * j + g + 8] = y[j][1];
    }
  }
  __syncthreads();
  if (threadIdx.x >= 8 * kTiles) return;
  // Thread u: gate row r0 + 2u and up row r0 + 2u + 1 -> unit (r0 / 2) + u.
  const int u = threadIdx.x;
  float gate = 0.0f, upv = 0.0f;
  for (int q = 0; q < parts; ++q) {
    gate += part[q][2 * u];
    upv += part[q][2 * u + 1];
  }
  const float inv = x_inv[t_tok];
  const uint16_t* be = bias + static_cast<size_t>(e) * rows;
  gate = gate * inv + bf16_to_f32(be[r0 + 2 * u]);
  upv = upv * inv + bf16_to_f32(be[r0 + 2 * u + 1]);
  const float v = swiglu(gate, upv, limit, alpha);
  const int I = rows / 2, unit = r0 / 2 + u;
  if (h != nullptr) h[static_cast<size_t>(slot) * I + unit] = v;
  if (h16 != nullptr) x16_store(h16 + static_cast<size_t>(slot) * x16_row_words(I), unit, ldexpf(v, kHScaleLog2));
}

// grid (16-row tiles, slots): one block per (rows, token t, expert slot j) writes y[s, rows] =
// W2[idx[s]] . h[s] + b2 to scratch; the last block of (t, rows) to finish (a counter per pair, reset
// by that block) forms out[t, rows] (+)= sum_j weight[t, j] * y[t*k + j, rows] in slot order.
//
// kCluster (v10, MoE variant 3): the k blocks of a (token, rows) pair form one thread-block cluster;
// each writes its y rows into block 0's shared memory and block 0 forms the weighted sum after the
// cluster barrier (same order and arithmetic, no y scratch, fence or counter).
template <int kTiles, int kBatch, int kStages, bool kCluster = false, bool kDirect = false>
__global__ void __launch_bounds__(256)
    down_kernel(const uint32_t* __restrict__ h16, const float* __restrict__ h_inv, const int32_t* __restrict__ idx,
                const float* __restrict__ weight, int k, const uint8_t* __restrict__ blocks,
                const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, int rows, int cols,
                float* __restrict__ y, int32_t* __restrict__ counters, float* __restrict__ out, bool accumulate,
                bool idx_ready) {
  const TimelineBlock timeline(kTimelineDown);
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16 * kTiles];
  __shared__ bool last;
  __shared__ float ys[kCluster ? 8 : 1][16 * kTiles];
  // idx_ready: the expert ids were written before the previous kernel (gate_up) started, so the weights
  // are requested before griddepcontrol.wait; only h (gate_up's output) waits for it.
  if (!idx_ready) {
    pdl_wait();
    timeline.waited();
    pdl_allow_dependents();
  }
  if constexpr (kCluster) asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  const int slot = blockIdx.y, t_tok = slot / k, tile = blockIdx.x, tiles = gridDim.x;
  const int e = idx_ready ? __ldcg(idx + slot) : idx[slot];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = tile * 16 * kTiles;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = blockDim.x >> 5;
  const uint32_t* hrow = h16 + static_cast<size_t>(slot) * x16_row_words(cols);
  if (!idx_ready) copy_row_async(xs, hrow, x16_row_words(cols));
  float yt[kTiles][2];
  tile_dot_any<kTiles, kBatch, kStages, kDirect>(blocks + static_cast<size_t>(e) * rows * nb * 16,
                                        scales + static_cast<size_t>(e) * rows * nb, r0, nb, warp * nch / parts,
                                        (warp + 1) * nch / parts, xs, x16_row_words(cols), yt, [&] {
                                          if (idx_ready) {
                                            pdl_wait();
                                            timeline.waited();
                                            pdl_allow_dependents();
                                            copy_row_async(xs, hrow, x16_row_words(cols));
                                          }
                                          wait_row();
                                        });
  if (t == 0) {
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      part[warp][16 * j + g] = yt[j][0];
      part[warp][16 * j + g + 8] = yt[j][1];
    }
  }
  __syncthreads();
  if constexpr (kCluster) {
    auto cluster = cooperative_groups::this_cluster();
    const int j = static_cast<int>(cluster.block_rank());  // = slot % k
    asm volatile("barrier.cluster.wait.aligned;" ::: "memory");  // every block of the cluster has started
    if (threadIdx.x < 16 * kTiles) {
      const int i = threadIdx.x, r = r0 + i;
      float v = 0.0f;
      for (int q = 0; q < parts; ++q) v += part[q][i];
      const float inv = h_inv != nullptr ? h_inv[slot] : ldexpf(1.0f, -kHScaleLog2);
      cluster.map_shared_rank(&ys[0][0], 0)[j * 16 * kTiles + i] =
          v * inv + bf16_to_f32(bias[static_cast<size_t>(e) * rows + r]);
    }
    cluster.sync();
    if (j != 0 || threadIdx.x >= 16 * kTiles) return;
    const int r = r0 + threadIdx.x;
    float total = 0.0f;
    for (int jj = 0; jj < k; ++jj) total = fmaf(weight[t_tok * k + jj], ys[jj][threadIdx.x], total);
    float* o = out + static_cast<size_t>(t_tok) * rows + r;
    *o = accumulate ? *o + total : total;
    return;
  }
  if (threadIdx.x < 16 * kTiles) {
    const int i = threadIdx.x, r = r0 + i;
    float v = 0.0f;
    for (int q = 0; q < parts; ++q) v += part[q][i];
    const float inv = h_inv != nullptr ? h_inv[slot] : ldexpf(1.0f, -kHScaleLog2);
    y[static_cast<size_t>(slot) * rows + r] = v * inv + bf16_to_f32(bias[static_cast<size_t>(e) * rows + r]);
  }
  __threadfence();
  __syncthreads();
  const int ci = t_tok * tiles + tile;
  if (threadIdx.x == 0) last = atomicAdd(&counters[ci], 1) == k - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x < 16 * kTiles) {
    const int r = r0 + threadIdx.x;
    float total = 0.0f;
    for (int j = 0; j < k; ++j) {
      total = fmaf(weight[t_tok * k + j], __ldcg(y + (static_cast<size_t>(t_tok) * k + j) * rows + r), total);
    }
    float* o = out + static_cast<size_t>(t_tok) * rows + r;
    *o = accumulate ? *o + total : total;
  }
  if (threadIdx.x == 0) counters[ci] = 0;
}

}  // namespace

size_t x16_bytes(int rows, int cols) { return static_cast<size_t>(rows) * x16_row_words(cols) * 4; }

int stage_x16(const float* x, int x_stride, int rows, int cols, uint32_t* x16, float* inv, cudaStream_t stream) {
  if (rows <= 0) return 0;
  if (cols % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  stage_x16_kernel<<<rows, 256, 0, stream>>>(x, x_stride, cols, x16, inv);
  return static_cast<int>(cudaGetLastError());
}

namespace {

// Kernel shapes the launchers choose from (set_moe_variant): row tiles per warp, chunks in flight per
// warp, chunks per warp (sets the warps per block). The epilogues need 16 * tiles threads (down) and
// so at most two tiles: a block may be a single warp.
struct MoeShape {
  int tiles, batch, per_warp, stages;  // stages > 0: weights through shared memory (batch unused)
  bool cluster;                        // down: the slots' sum through a cluster (gate_up: as variant 1)
  bool pre;                            // down: weights requested before griddepcontrol.wait (idx_ready)
  bool direct;                         // the E2M1 bits straight into fp16 fields (e2m1_direct)
};
constexpr MoeShape kMoeShapes[kMoeVariants] = {{1, 6, 6, 0, false, false, false}, {2, 3, 6, 0, false, false, false},
                                               {2, 0, 6, 2, false, false, false}, {2, 3, 6, 0, true, false, false},
                                               {2, 3, 6, 0, true, true, false},   {2, 3, 6, 0, false, false, true},
                                               {2, 3, 6, 0, true, true, true},    {1, 6, 6, 0, false, false, true}};
int g_moe_variant[2] = {kMoeDefaultGateUp, kMoeDefaultDown};

MoeShape moe_shape(int which, int rows, int cols) {
  const MoeShape s = kMoeShapes[g_moe_variant[which]];
  if (rows % (16 * s.tiles) != 0) return kMoeShapes[0];
  // The staged kernels unroll at most per_warp chunks per warp; k_parts caps the warps at 8.
  const int nch = ((cols >> 5) + 3) / 4, parts = k_parts(cols >> 5, s.per_warp);
  if (s.stages > 0 && (nch + parts - 1) / parts > s.per_warp) return kMoeShapes[kMoeDefaultGateUp];
  return s;
}

template <typename Kernel>
void moe_allow_smem(Kernel kernel, size_t smem) {
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
}

}  // namespace

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_moe)

void set_moe_variant(int gate_up, int down) {
  g_moe_variant[0] = gate_up >= 0 && gate_up < kMoeVariants ? gate_up : 0;
  g_moe_variant[1] = down >= 0 && down < kMoeVariants ? down : 0;
}

int moe_gate_up_swiglu(const uint32_t* x16, const float* x_inv, const int32_t* idx, int T, int k,
                       const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                       float limit, float alpha, float* h, uint32_t* h16, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || (rows / 2) % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  const MoeShape s = moe_shape(0, rows, cols);
  const int warps = k_parts(cols >> 5, s.per_warp);
  const size_t smem = x16_row_words(cols) * 4 + warps * ring_bytes(s.tiles, s.stages);
  const dim3 grid(rows / (16 * s.tiles), T * k), block(32 * warps);
  auto go = [&](auto kernel) {
    moe_allow_smem(kernel, smem);
    launch_pdl(kernel, grid, block, smem, stream, x16, x_inv, idx, k, blocks, scales, bias, rows, cols, limit, alpha, h,
               h16);
  };
  if (s.stages > 0) {
    go(gate_up_kernel<2, 6, 2>);
  } else if (s.tiles == 2 && s.direct) {
    go(gate_up_kernel<2, 3, 0, true>);
  } else if (s.tiles == 2) {
    go(gate_up_kernel<2, 3, 0>);
  } else if (s.direct) {
    go(gate_up_kernel<1, 6, 0, true>);
  } else {
    go(gate_up_kernel<1, 6, 0>);
  }
  return static_cast<int>(cudaGetLastError());
}

int moe_down_accumulate(const uint32_t* h16, const float* h_inv, const int32_t* idx, const float* weight, int T, int k,
                        const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                        float* y, int32_t* counters, float* out, bool accumulate, cudaStream_t stream,
                        bool idx_ready) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || k < 1 || k > 8) return static_cast<int>(cudaErrorInvalidValue);
  const MoeShape s = moe_shape(1, rows, cols);
  const int warps = k_parts(cols >> 5, s.per_warp);
  const size_t smem = x16_row_words(cols) * 4 + warps * ring_bytes(s.tiles, s.stages);
  const dim3 grid(rows / (16 * s.tiles), T * k), block(32 * warps);
  auto go = [&](auto kernel) {
    moe_allow_smem(kernel, smem);
    launch_pdl(kernel, grid, block, smem, stream, h16, h_inv, idx, weight, k, blocks, scales, bias, rows, cols, y,
               counters, out, accumulate, s.stages == 0 && s.pre && idx_ready);
  };
  if (s.cluster) {
    auto kernel = s.direct ? down_kernel<2, 3, 0, true, true> : down_kernel<2, 3, 0, true>;
    moe_allow_smem(kernel, smem);
    launch_pdl_cluster(kernel, grid, block, dim3(1, k, 1), smem, stream, h16, h_inv, idx, weight, k, blocks, scales,
                       bias, rows, cols, y, counters, out, accumulate, s.pre && idx_ready);
  } else if (s.stages > 0) {
    go(down_kernel<2, 6, 2>);
  } else if (s.tiles == 2 && s.direct) {
    go(down_kernel<2, 3, 0, false, true>);
  } else if (s.tiles == 2) {
    go(down_kernel<2, 3, 0>);
  } else if (s.direct) {
    go(down_kernel<1, 6, 0, false, true>);
  } else {
    go(down_kernel<1, 6, 0>);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
