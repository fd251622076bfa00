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

template <bool kFast>
__device__ __forceinline__ void mma_chunk(const ChunkData& d, const uint32_t* x16, int nb, int c, int lane,
                                          float& acc_g, float& acc_g8) {
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
  constexpr uint32_t kTab0 = 0x3E3C3800u, kTab1 = 0x46444240u;  // fp16 high bytes of 0, .5, 1, 1.5 | 2, 3, 4, 6
  constexpr uint32_t kSpread[4] = {0x4808u, 0x5818u, 0x6828u, 0x7838u};
  float cacc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const uint32_t wgs[4] = {d.wg.x, d.wg.y, d.wg.z, d.wg.w};
  const uint32_t wg8s[4] = {d.wg8.x, d.wg8.y, d.wg8.z, d.wg8.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    // mxfp4_word_to_half2x4 for both rows, written straight into the MMA operands.
    const uint32_t selg = wgs[w] & 0x77777777u, selg8 = wg8s[w] & 0x77777777u;
    const uint32_t log = prmt(kTab0, kTab1, selg), hig = prmt(kTab0, kTab1, selg >> 16);
    const uint32_t log8 = prmt(kTab0, kTab1, selg8), hig8 = prmt(kTab0, kTab1, selg8 >> 16);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int k1 = 2 * half, k2 = 2 * half + 1;
      uint32_t a[4];
      a[0] = prmt(log, hig, kSpread[k1]) | ((wgs[w] << (12 - 4 * k1)) & 0x80008000u);
      a[1] = prmt(log8, hig8, kSpread[k1]) | ((wg8s[w] << (12 - 4 * k1)) & 0x80008000u);
      a[2] = prmt(log, hig, kSpread[k2]) | ((k2 == 3 ? wgs[w] : wgs[w] << (12 - 4 * k2)) & 0x80008000u);
      a[3] = prmt(log8, hig8, kSpread[k2]) | ((k2 == 3 ? wg8s[w] : wg8s[w] << (12 - 4 * k2)) & 0x80008000u);
      // Elements (k, k+4) of word w; B words 4w + 2half (+1) hold the same inputs.
      mma_f16_16816(cacc, a, bw[4 * w + 2 * half], bw[4 * w + 2 * half + 1]);
    }
  }
  acc_g = fmaf(cacc[0], scale_lo(d.sg), acc_g);
  acc_g = fmaf(cacc[1], scale_hi(d.sg), acc_g);
  acc_g8 = fmaf(cacc[2], scale_lo(d.sg8), acc_g8);
  acc_g8 = fmaf(cacc[3], scale_hi(d.sg8), acc_g8);
}

// Chunks whose loads one warp keeps in flight at once.
constexpr int kBatchChunks = 6;

// `ready` runs once per warp, after the first batch's weight loads are issued: the block waits there
// for its x16 row to land in shared memory.
template <bool kFast, typename Ready>
__device__ __forceinline__ void dot_chunks(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                           const uint8_t* sg8, int nb, int c0, int c1, const uint32_t* xs, int lane,
                                           float& acc_g, float& acc_g8, bool& waited, Ready&& ready) {
  const int t = lane & 3;
  for (int cb = c0; cb < c1; cb += kBatchChunks) {
    ChunkData d[kBatchChunks];
#pragma unroll
    for (int i = 0; i < kBatchChunks; ++i) {
      if (cb + i < c1) d[i] = load_chunk<kFast>(bg, bg8, sg, sg8, nb, cb + i, t);
    }
    if (!waited) {
      ready();
      waited = true;
    }
#pragma unroll
    for (int i = 0; i < kBatchChunks; ++i) {
      if (cb + i < c1) mma_chunk<kFast>(d[i], xs, nb, cb + i, lane, acc_g, acc_g8);
    }
  }
}

// Dot products of rows r0 + g and r0 + g + 8 with the x16 row in shared memory over chunks [c0, c1);
// the sums end up in every lane of the group (reduced over t).
template <typename Ready>
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, const uint8_t* scales, int r0, int nb, int c0, int c1,
                                         const uint32_t* xs, float& out_g, float& out_g8, Ready&& ready) {
  const int lane = threadIdx.x & 31, g = lane >> 2;
  const uint8_t* bg = blocks + static_cast<size_t>(r0 + g) * nb * 16;
  const uint8_t* bg8 = bg + static_cast<size_t>(8) * nb * 16;
  const uint8_t* sg = scales + static_cast<size_t>(r0 + g) * nb;
  const uint8_t* sg8 = sg + static_cast<size_t>(8) * nb;
  float acc_g = 0.0f, acc_g8 = 0.0f;
  bool waited = false;
  const int full = (nb & 1) ? c0 : max(c0, min(c1, nb / 4));  // chunks [c0, full) take the fast path
  dot_chunks<true>(bg, bg8, sg, sg8, nb, c0, full, xs, lane, acc_g, acc_g8, waited, ready);
  dot_chunks<false>(bg, bg8, sg, sg8, nb, full, c1, xs, lane, acc_g, acc_g8, waited, ready);
  if (!waited) ready();
  acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 1);
  acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 2);
  acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 1);
  acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 2);
  out_g = acc_g;
  out_g8 = acc_g8;
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

// Warps that split one row tile's chunks so that each holds at most kBatchChunks of them.
__host__ __device__ __forceinline__ int k_parts(int nb) {
  const int nch = (nb + 3) / 4;
  return min(8, (nch + kBatchChunks - 1) / kBatchChunks);
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

// grid (16-row tiles, slots): slot s = (token s / k, expert idx[s]); the block's warps split the
// columns (k_parts) and meet in shared memory.
__global__ void __launch_bounds__(256)
    gate_up_kernel(const uint32_t* __restrict__ x16, const float* __restrict__ x_inv, const int32_t* __restrict__ idx,
                   int k, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                   const uint16_t* __restrict__ bias, int rows, int cols, float limit, float alpha,
                   float* __restrict__ h, uint32_t* __restrict__ h16) {
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16];
  pdl_wait();
  pdl_allow_dependents();
  const int slot = blockIdx.y, t_tok = slot / k, e = idx[slot];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * 16;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = blockDim.x >> 5;
  copy_row_async(xs, x16 + static_cast<size_t>(t_tok) * x16_row_words(cols), x16_row_words(cols));
  float yg, yg8;
  tile_dot(blocks + static_cast<size_t>(e) * rows * nb * 16, scales + static_cast<size_t>(e) * rows * nb, r0, nb,
           warp * nch / parts, (warp + 1) * nch / parts, xs, yg, yg8, wait_row);
  if (t == 0) {
    part[warp][g] = yg;
    part[warp][g + 8] = yg8;
  }
  __syncthreads();
  if (threadIdx.x >= 8) return;
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
__global__ void __launch_bounds__(256)
    down_kernel(const uint32_t* __restrict__ h16, const float* __restrict__ h_inv, const int32_t* __restrict__ idx,
                const float* __restrict__ weight, int k, const uint8_t* __restrict__ blocks,
                const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, int rows, int cols,
                float* __restrict__ y, int32_t* __restrict__ counters, float* __restrict__ out, bool accumulate) {
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16];
  __shared__ bool last;
  pdl_wait();
  pdl_allow_dependents();
  const int slot = blockIdx.y, t_tok = slot / k, e = idx[slot], tile = blockIdx.x;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = tile * 16;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = blockDim.x >> 5;
  copy_row_async(xs, h16 + static_cast<size_t>(slot) * x16_row_words(cols), x16_row_words(cols));
  float yg, yg8;
  tile_dot(blocks + static_cast<size_t>(e) * rows * nb * 16, scales + static_cast<size_t>(e) * rows * nb, r0, nb,
           warp * nch / parts, (warp + 1) * nch / parts, xs, yg, yg8, wait_row);
  if (t == 0) {
    part[warp][g] = yg;
    part[warp][g + 8] = yg8;
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    const int i = threadIdx.x, r = r0 + i;
    float v = 0.0f;
    for (int q = 0; q < parts; ++q) v += part[q][i];
    const float inv = h_inv != nullptr ? h_inv[slot] : ldexpf(1.0f, -kHScaleLog2);
    y[static_cast<size_t>(slot) * rows + r] = v * inv + bf16_to_f32(bias[static_cast<size_t>(e) * rows + r]);
  }
  __threadfence();
  __syncthreads();
  const int ci = t_tok * gridDim.x + tile;
  if (threadIdx.x == 0) last = atomicAdd(&counters[ci], 1) == k - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (threadIdx.x < 16) {
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

int moe_gate_up_swiglu(const uint32_t* x16, const float* x_inv, const int32_t* idx, int T, int k,
                       const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                       float limit, float alpha, float* h, uint32_t* h16, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || (rows / 2) % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = x16_row_words(cols) * 4;
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(gate_up_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  const dim3 grid(rows / 16, T * k);
  launch_pdl(gate_up_kernel, grid, dim3(32 * k_parts(cols >> 5)), smem, stream, x16, x_inv, idx, k, blocks, scales, bias,
             rows, cols, limit, alpha, h, h16);
  return static_cast<int>(cudaGetLastError());
}

int moe_down_accumulate(const uint32_t* h16, const float* h_inv, const int32_t* idx, const float* weight, int T, int k,
                        const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                        float* y, int32_t* counters, float* out, bool accumulate, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || k < 1 || k > 8) return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = x16_row_words(cols) * 4;
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(down_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  const dim3 grid(rows / 16, T * k);
  launch_pdl(down_kernel, grid, dim3(32 * k_parts(cols >> 5)), smem, stream, h16, h_inv, idx, weight, k, blocks, scales,
             bias, rows, cols, y, counters, out, accumulate);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
