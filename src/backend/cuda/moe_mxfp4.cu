// MXFP4 expert GEMVs on tensor cores, reading the checkpoint's blocks/scales as they are.
//
// A warp owns 16 weight rows. Lane (g, t) = (lane / 4, lane % 4) loads, per chunk of 4 MXFP4 blocks,
// block 4c + t of rows g and g + 8 (16 bytes each; a group's 4 lanes read 64 contiguous bytes) and
// decodes it exactly to fp16. One m16n8k16 MMA consumes 4 elements of each lane's block, so an MMA
// mixes 4 blocks with different scales; the B operand keeps them apart: column n < 4 holds the input of
// block 4c + n only (the high fp16 half of x), column 4 + n its low half (x - hi), zero elsewhere. After
// the 8 MMAs of a chunk every accumulator column is one block's partial sum, multiplied by its E8M0
// scale in f32. With x split into two fp16 parts (after a power-of-two prescale into fp16's range) the
// products are exact and the sums f32: the result matches an f32 GEMV on the decoded weights.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace gptoss::cuda {
namespace {

// Shared-memory input of one row x: per block, 16 words of hi halves then 16 of lo halves, padded to
// 36 words so that the 8 lanes that read B operands hit distinct banks. Within each group of 8
// elements the order is 0,4,1,5,2,6,3,7 (the pairing of mxfp4_word_to_half2x4).
constexpr int kBlockWords = 36;

__host__ __device__ __forceinline__ int padded_blocks(int nb) { return (nb + 3) & ~3; }

// Stages x[0..cols) into xs16 (prescaled by 2^p, split hi/lo) and returns 2^-p. All threads of the
// block call this with the same x; `red` holds one float per warp.
__device__ float stage_x16(const float* __restrict__ x, int cols, uint32_t* xs16, float* red, int nthreads, int tid) {
  float mx = 0.0f;
  for (int c = tid; c < cols; c += nthreads) mx = fmaxf(mx, fabsf(x[c]));
  mx = warp_max(mx);
  const int lane = tid & 31, warp = tid >> 5, nwarps = nthreads >> 5;
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  for (int w = 0; w < nwarps; ++w) mx = fmaxf(mx, red[w]);
  int e = 0;
  frexpf(mx, &e);  // mx < 2^e
  const int p = max(-126, min(126, 14 - e));
  const float up = ldexpf(1.0f, p);
  __half* xh = reinterpret_cast<__half*>(xs16);
  const int nb = cols >> 5, npad = padded_blocks(nb);
  for (int c = tid; c < npad * 32; c += nthreads) {
    const int b = c >> 5, j = c & 31, grp = j >> 3, el = j & 7;
    const int perm = el < 4 ? 2 * el : 2 * (el - 4) + 1;
    const float v = c < cols ? x[c] * up : 0.0f;
    const __half hi = __float2half_rn(v);
    const __half lo = __float2half_rn(v - __half2float(hi));
    xh[b * kBlockWords * 2 + grp * 8 + perm] = hi;
    xh[b * kBlockWords * 2 + 32 + grp * 8 + perm] = lo;
  }
  __syncthreads();  // also keeps `red` stable until every thread has read it
  return ldexpf(1.0f, -p);
}

__device__ __forceinline__ uint4 ld_stream(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

struct ChunkData {
  uint4 wg, wg8;
  float s[4];  // scales: row g block sb, sb + 1; row g + 8 block sb, sb + 1
};

__device__ __forceinline__ ChunkData load_chunk(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                                const uint8_t* sg8, int nb, int c, int t) {
  ChunkData d;
  const int blk = 4 * c + t;
  if (blk < nb) {
    d.wg = ld_stream(bg + blk * 16);
    d.wg8 = ld_stream(bg8 + blk * 16);
  } else {
    d.wg = d.wg8 = make_uint4(0, 0, 0, 0);
  }
  const int sb = 4 * c + 2 * (t & 1);
  d.s[0] = sb < nb ? e8m0_to_f32(__ldg(sg + sb)) : 0.0f;
  d.s[1] = sb + 1 < nb ? e8m0_to_f32(__ldg(sg + sb + 1)) : 0.0f;
  d.s[2] = sb < nb ? e8m0_to_f32(__ldg(sg8 + sb)) : 0.0f;
  d.s[3] = sb + 1 < nb ? e8m0_to_f32(__ldg(sg8 + sb + 1)) : 0.0f;
  return d;
}

__device__ __forceinline__ void mma_chunk(const ChunkData& d, const uint32_t* xs16, int c, int lane, float& acc_g,
                                          float& acc_g8) {
  const int g = lane >> 2, t = lane & 3;
  const bool feeds_b = (g & 3) == t;
  const uint32_t* xb = xs16 + (4 * c + t) * kBlockWords + (g >= 4 ? 16 : 0);
  float cacc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const uint32_t wgs[4] = {d.wg.x, d.wg.y, d.wg.z, d.wg.w};
  const uint32_t wg8s[4] = {d.wg8.x, d.wg8.y, d.wg8.z, d.wg8.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    uint32_t hg[4], hg8[4];
    mxfp4_word_to_half2x4(wgs[w], hg);
    mxfp4_word_to_half2x4(wg8s[w], hg8);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      uint32_t b0 = 0, b1 = 0;
      if (feeds_b) {
        const uint2 bv = *reinterpret_cast<const uint2*>(xb + 4 * w + 2 * half);
        b0 = bv.x;
        b1 = bv.y;
      }
      const uint32_t a[4] = {hg[2 * half], hg8[2 * half], hg[2 * half + 1], hg8[2 * half + 1]};
      mma_f16_16816(cacc, a, b0, b1);
    }
  }
  acc_g = fmaf(cacc[0], d.s[0], acc_g);
  acc_g = fmaf(cacc[1], d.s[1], acc_g);
  acc_g8 = fmaf(cacc[2], d.s[2], acc_g8);
  acc_g8 = fmaf(cacc[3], d.s[3], acc_g8);
}

// Dot products of rows r0 + g and r0 + g + 8 with the staged x over chunks [c0, c1); the sums end up
// in every lane of the group (already reduced over t).
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, const uint8_t* scales, int r0, int nb, int c0, int c1,
                                         const uint32_t* xs16, float& out_g, float& out_g8) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const uint8_t* bg = blocks + static_cast<size_t>(r0 + g) * nb * 16;
  const uint8_t* bg8 = bg + static_cast<size_t>(8) * nb * 16;
  const uint8_t* sg = scales + static_cast<size_t>(r0 + g) * nb;
  const uint8_t* sg8 = sg + static_cast<size_t>(8) * nb;
  float acc_g = 0.0f, acc_g8 = 0.0f;
  if (c0 < c1) {
    ChunkData cur = load_chunk(bg, bg8, sg, sg8, nb, c0, t);
    for (int c = c0; c < c1; ++c) {
      ChunkData nxt = cur;
      if (c + 1 < c1) nxt = load_chunk(bg, bg8, sg, sg8, nb, c + 1, t);
      mma_chunk(cur, xs16, c, lane, acc_g, acc_g8);
      cur = nxt;
    }
  }
  acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 1);
  acc_g += __shfl_xor_sync(0xffffffffu, acc_g, 2);
  acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 1);
  acc_g8 += __shfl_xor_sync(0xffffffffu, acc_g8, 2);
  out_g = acc_g;
  out_g8 = acc_g8;
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

constexpr int kGateUpWarps = 4;

__global__ void __launch_bounds__(kGateUpWarps * 32)
    gate_up_kernel(const float* __restrict__ x, int x_stride, const int32_t* __restrict__ idx, int k,
                   const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                   const uint16_t* __restrict__ bias, int rows, int cols, float limit, float alpha,
                   float* __restrict__ h) {
  extern __shared__ uint32_t xs16[];
  __shared__ float red[kGateUpWarps];
  const int slot = blockIdx.y, t_tok = slot / k, e = idx[slot];
  const float inv = stage_x16(x + static_cast<size_t>(t_tok) * x_stride, cols, xs16, red, blockDim.x, threadIdx.x);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = (blockIdx.x * kGateUpWarps + warp) * 16;
  if (r0 >= rows) return;
  const int nb = cols >> 5;
  float yg, yg8;
  tile_dot(blocks + static_cast<size_t>(e) * rows * nb * 16, scales + static_cast<size_t>(e) * rows * nb, r0, nb, 0,
           (nb + 3) / 4, xs16, yg, yg8);
  const uint16_t* be = bias + static_cast<size_t>(e) * rows;
  yg = yg * inv + bf16_to_f32(be[r0 + g]);
  yg8 = yg8 * inv + bf16_to_f32(be[r0 + g + 8]);
  // Row r0 + g is a gate row when g is even; its up row is g + 1, held by lane + 4.
  const float up_g = __shfl_down_sync(0xffffffffu, yg, 4);
  const float up_g8 = __shfl_down_sync(0xffffffffu, yg8, 4);
  if (t == 0 && (g & 1) == 0) {
    float* hs = h + static_cast<size_t>(slot) * (rows / 2);
    hs[(r0 + g) / 2] = swiglu(yg, up_g, limit, alpha);
    hs[(r0 + g + 8) / 2] = swiglu(yg8, up_g8, limit, alpha);
  }
}

constexpr int kDownThreads = 256;

// One block per (16 output rows, token); warp w handles slot w % k over chunk part w / k.
__global__ void __launch_bounds__(kDownThreads)
    down_kernel(const float* __restrict__ hin, const int32_t* __restrict__ idx, const float* __restrict__ weight,
                int k, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                const uint16_t* __restrict__ bias, int rows, int cols, float* __restrict__ out, bool accumulate) {
  extern __shared__ uint32_t xs16[];  // [k][npad * kBlockWords]
  __shared__ float red[kDownThreads / 32];
  __shared__ float inv[8];
  __shared__ float part[kDownThreads / 32][16];
  const int t_tok = blockIdx.y;
  const int nb = cols >> 5, npad = padded_blocks(nb);
  for (int j = 0; j < k; ++j) {
    const float s = stage_x16(hin + (static_cast<size_t>(t_tok) * k + j) * cols, cols, xs16 + j * npad * kBlockWords,
                              red, blockDim.x, threadIdx.x);
    if (threadIdx.x == 0) inv[j] = s;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int nwarps = blockDim.x >> 5, parts = nwarps / k;
  const int r0 = blockIdx.x * 16;
  if (warp < parts * k) {
    const int j = warp % k, q = warp / k;
    const int e = idx[t_tok * k + j];
    const int nch = (nb + 3) / 4;
    const int c0 = q * nch / parts, c1 = (q + 1) * nch / parts;
    float yg, yg8;
    tile_dot(blocks + static_cast<size_t>(e) * rows * nb * 16, scales + static_cast<size_t>(e) * rows * nb, r0, nb,
             c0, c1, xs16 + j * npad * kBlockWords, yg, yg8);
    if (t == 0) {
      part[warp][g] = yg;
      part[warp][g + 8] = yg8;
    }
  }
  __syncthreads();
  if (threadIdx.x < 16) {
    const int i = threadIdx.x, r = r0 + i;
    float total = 0.0f;
    for (int j = 0; j < k; ++j) {
      float y = 0.0f;
      for (int q = 0; q < parts; ++q) y += part[q * k + j][i];
      const int e = idx[t_tok * k + j];
      y = y * inv[j] + bf16_to_f32(bias[static_cast<size_t>(e) * rows + r]);
      total = fmaf(weight[t_tok * k + j], y, total);
    }
    float* o = out + static_cast<size_t>(t_tok) * rows + r;
    *o = accumulate ? *o + total : total;
  }
}

size_t x16_bytes(int cols) { return static_cast<size_t>(padded_blocks(cols >> 5)) * kBlockWords * 4; }

}  // namespace

int moe_gate_up_swiglu(const float* x, int x_stride, const int32_t* idx, int T, int k, const uint8_t* blocks,
                       const uint8_t* scales, const uint16_t* bias, int rows, int cols, float limit, float alpha,
                       float* h, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = x16_bytes(cols);
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(gate_up_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  const dim3 grid((rows / 16 + kGateUpWarps - 1) / kGateUpWarps, T * k);
  gate_up_kernel<<<grid, kGateUpWarps * 32, smem, stream>>>(x, x_stride, idx, k, blocks, scales, bias, rows, cols,
                                                            limit, alpha, h);
  return static_cast<int>(cudaGetLastError());
}

int moe_down_accumulate(const float* h, const int32_t* idx, const float* weight, int T, int k, const uint8_t* blocks,
                        const uint8_t* scales, const uint16_t* bias, int rows, int cols, float* out, bool accumulate,
                        cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || k < 1 || k > 8) return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = x16_bytes(cols) * k;
  if (smem > 48 * 1024) {
    cudaFuncSetAttribute(down_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  }
  const dim3 grid(rows / 16, T);
  down_kernel<<<grid, kDownThreads, smem, stream>>>(h, idx, weight, k, blocks, scales, bias, rows, cols, out,
                                                     accumulate);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
