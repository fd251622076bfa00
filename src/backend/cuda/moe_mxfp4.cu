// MXFP4 expert GEMVs on tensor cores, reading the checkpoint's blocks/scales as they are.
//
// A warp owns 16 weight rows. Lane (g, t) = (lane / 4, lane % 4) loads, per chunk of 4 MXFP4 blocks,
// block 4c + t of rows g and g + 8 (16 bytes each; a group's 4 lanes read 64 contiguous bytes) and
// decodes it exactly to fp16 (as E2M1 x 2^-14, e2m1_direct). One m16n8k16 MMA consumes 4 elements of
// each lane's block, so an MMA mixes 4 blocks with different scales; the B operand keeps them apart:
// column n < 4 holds the input of block 4c + n only (the high fp16 half of x), column 4 + n its low half
// (x - hi), zero elsewhere. After the 8 MMAs of a chunk every accumulator column is one block's partial
// sum, multiplied by its E8M0 scale in f32. With x split into two fp16 parts (x16.cuh) the products are
// exact and the sums f32: the result matches an f32 GEMV on the decoded weights. B operands are read
// straight from the x16 rows in global memory (a few KB, L1/L2-resident), so the kernels have no prologue.
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

// A 16-byte block and scale bytes of the weight tile: streamed from global memory, or (kSmem) from a tile
// staged in shared memory by the bulk-copy engine (MoE variant 1).
template <bool kSmem>
__device__ __forceinline__ uint4 load_w(const uint8_t* p) {
  if constexpr (kSmem) return *reinterpret_cast<const uint4*>(p);
  else return ld_stream16(p);
}
template <bool kSmem, typename T>
__device__ __forceinline__ uint32_t load_s(const T* p) {
  if constexpr (kSmem) return *p;
  else return ld_stream_small(p);
}

struct ChunkData {
  uint4 wg, wg8;       // this lane's block of rows g and g + 8
  uint32_t sg, sg8;    // scale bytes of blocks sb and sb + 1 (bits 0-7, 8-15) for rows g and g + 8
};

// Chunk c of the row's end (the chunks dot_chunks_step does not take): blocks and scale bytes past the
// row's nb blocks read as zero.
template <bool kSmem>
__device__ __forceinline__ ChunkData load_chunk_tail(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                                     const uint8_t* sg8, int nb, int c, int t) {
  ChunkData d;
  const int blk = 4 * c + t, sb = 4 * c + 2 * (t & 1);
  const bool in = blk < nb;
  d.wg = in ? load_w<kSmem>(bg + blk * 16) : make_uint4(0, 0, 0, 0);
  d.wg8 = in ? load_w<kSmem>(bg8 + blk * 16) : make_uint4(0, 0, 0, 0);
  d.sg = (sb < nb ? load_s<kSmem>(sg + sb) : 0u) | (sb + 1 < nb ? load_s<kSmem>(sg + sb + 1) << 8 : 0u);
  d.sg8 = (sb < nb ? load_s<kSmem>(sg8 + sb) : 0u) | (sb + 1 < nb ? load_s<kSmem>(sg8 + sb + 1) << 8 : 0u);
  return d;
}

// E8M0 bytes 0 and 1 of s -> 2^(byte - 127). A scale byte of 0 (2^-127) is taken as 0: its block's
// values are below 4e-38, and this keeps the decode to one shift and mask.
__device__ __forceinline__ float scale_lo(uint32_t s) { return __uint_as_float((s << 23) & 0x7f800000u); }
__device__ __forceinline__ float scale_hi(uint32_t s) { return __uint_as_float((s << 15) & 0x7f800000u); }

// One chunk (4 MXFP4 blocks x 16 rows) of the warp's row tile. kFast: the chunk lies inside the row.
template <bool kFast>
__device__ __forceinline__ void mma_chunk(const ChunkData& d, const uint32_t* x16, int nb, int c, int lane,
                                          float (&acc)[2]) {
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
  float cacc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const uint32_t wg = w == 0 ? d.wg.x : w == 1 ? d.wg.y : w == 2 ? d.wg.z : d.wg.w;
    const uint32_t wg8 = w == 0 ? d.wg8.x : w == 1 ? d.wg8.y : w == 2 ? d.wg8.z : d.wg8.w;
    uint32_t og[4], og8[4];
    e2m1_direct(wg, og);
    e2m1_direct(wg8, og8);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      // Elements (k, k+4) of word w; B words 4w + 2half (+1) hold the same inputs.
      const uint32_t a[4] = {og[2 * half], og8[2 * half], og[2 * half + 1], og8[2 * half + 1]};
      mma_f16_16816(cacc, a, bw[4 * w + 2 * half], bw[4 * w + 2 * half + 1]);
    }
  }
  acc[0] = fmaf(cacc[0], scale_lo(d.sg), acc[0]);
  acc[0] = fmaf(cacc[1], scale_hi(d.sg), acc[0]);
  acc[1] = fmaf(cacc[2], scale_lo(d.sg8), acc[1]);
  acc[1] = fmaf(cacc[3], scale_hi(d.sg8), acc[1]);
}

// The four lanes t = 0..3 of each row group g hold partial sums of the same accumulators (m16n8k16 C
// layout): every lane gets the quad's total.
__device__ __forceinline__ void quad_sums(const float (&acc)[2], float (&out)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float v = acc[h];
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    out[h] = v;
  }
}

// Chunks in flight per warp (NOTES v16: 3, with 6 chunks per warp).
constexpr int kBatch = 3;

// `ready` runs once per warp, after the first batch's weight loads are issued (the block waits there for
// its x16 row to land in shared memory; `waited` records it). kBatch chunks are in flight at once.
//
// The fast path (NOTES v16): chunks [c0, c1) lie inside the row and the row's scale bytes are 2-byte
// aligned (even block count), so no bounds checks, one 16-bit load per row for the two scales, and the
// addresses as pointers stepped once per batch, a batch's chunks at immediate offsets from them.
template <bool kSmem, typename Ready>
__device__ __forceinline__ void dot_chunks_step(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                                const uint8_t* sg8, int nb, int c0, int c1, const uint32_t* xs,
                                                int lane, float (&acc)[2], bool& waited, Ready&& ready) {
  const int t = lane & 3;
  const size_t first = static_cast<size_t>(4 * c0 + t) * 16, first_s = static_cast<size_t>(4 * c0 + 2 * (t & 1));
  const uint8_t* pw = bg + first;
  const uint8_t* pw8 = bg8 + first;
  const uint16_t* ps = reinterpret_cast<const uint16_t*>(sg + first_s);
  const uint16_t* ps8 = reinterpret_cast<const uint16_t*>(sg8 + first_s);
  for (int cb = c0; cb < c1; cb += kBatch) {
    ChunkData d[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (cb + i < c1) {
        d[i].wg = load_w<kSmem>(pw + 64 * i);
        d[i].wg8 = load_w<kSmem>(pw8 + 64 * i);
        d[i].sg = load_s<kSmem>(ps + 2 * i);
        d[i].sg8 = load_s<kSmem>(ps8 + 2 * i);
      }
    }
    if (!waited) {
      ready();
      waited = true;
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (cb + i < c1) mma_chunk<true>(d[i], xs, nb, cb + i, lane, acc);
    }
    pw += 64 * kBatch, pw8 += 64 * kBatch;
    ps += 2 * kBatch, ps8 += 2 * kBatch;
  }
}

// The row's end: chunks [c0, c1) with bounds checks (load_chunk_tail).
template <bool kSmem, typename Ready>
__device__ __forceinline__ void dot_chunks_tail(const uint8_t* bg, const uint8_t* bg8, const uint8_t* sg,
                                                const uint8_t* sg8, int nb, int c0, int c1, const uint32_t* xs,
                                                int lane, float (&acc)[2], bool& waited, Ready&& ready) {
  const int t = lane & 3;
  for (int cb = c0; cb < c1; cb += kBatch) {
    ChunkData d[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (cb + i < c1) d[i] = load_chunk_tail<kSmem>(bg, bg8, sg, sg8, nb, cb + i, t);
    }
    if (!waited) {
      ready();
      waited = true;
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (cb + i < c1) mma_chunk<false>(d[i], xs, nb, cb + i, lane, acc);
    }
  }
}

// Dot products of rows r0 + g and r0 + g + 8 with the x16 row in shared memory over chunks [c0, c1); the
// sums end up in every lane of the group (reduced over t). Rows of blocks are row_bytes apart (nb * 16 in
// global memory; kSmem: a staged tile's padded rows).
template <bool kSmem = false, typename Ready>
__device__ __forceinline__ void tile_dot(const uint8_t* blocks, size_t row_bytes, const uint8_t* scales, int r0, int nb,
                                         int c0, int c1, const uint32_t* xs, float (&out)[2], Ready&& ready) {
  const int lane = threadIdx.x & 31, g = lane >> 2;
  const uint8_t* bg = blocks + static_cast<size_t>(r0 + g) * row_bytes;
  const uint8_t* bg8 = bg + 8 * row_bytes;
  const uint8_t* sg = scales + static_cast<size_t>(r0 + g) * nb;
  const uint8_t* sg8 = sg + static_cast<size_t>(8) * nb;
  float acc[2] = {0.0f, 0.0f};
  bool waited = false;
  const int full = (nb & 1) ? c0 : max(c0, min(c1, nb / 4));  // chunks [c0, full) take the fast path
  dot_chunks_step<kSmem>(bg, bg8, sg, sg8, nb, c0, full, xs, lane, acc, waited, ready);
  dot_chunks_tail<kSmem>(bg, bg8, sg, sg8, nb, full, c1, xs, lane, acc, waited, ready);
  if (!waited) ready();
  quad_sums(acc, out);
  out[0] *= 16384.0f, out[1] *= 16384.0f;  // the decode's 2^-14
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

// A warp copies only the x16 words of its own chunks [c0, c1) of a row (cp.async, 16 bytes per request) and waits
// for them alone (wait_warp_slice): no block barrier before its first MMA (down at one token, NOTES v51).
__device__ __forceinline__ void copy_warp_slice_async(uint32_t* xs, const uint32_t* row, int c0, int c1) {
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(xs));
  const int w0 = 4 * c0 * kX16BlockWords, w1 = 4 * c1 * kX16BlockWords;
  for (int w = w0 + 4 * static_cast<int>(threadIdx.x & 31); w < w1; w += 128) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(base + static_cast<uint32_t>(w * 4)), "l"(row + w));
  }
  asm volatile("cp.async.commit_group;");
}
__device__ __forceinline__ void wait_warp_slice() {
  asm volatile("cp.async.wait_all;" ::: "memory");
  __syncwarp();
}

// Warps that split one row tile's chunks so that each holds at most `per_warp` of them.
__host__ __device__ __forceinline__ int k_parts(int nb, int per_warp) {
  const int nch = (nb + 3) / 4;
  return min(8, (nch + per_warp - 1) / per_warp);
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

// Thread u of a tile's epilogue: the warps' partial sums (part[q][row], q < parts) of gate row r0 + 2u and up
// row r0 + 2u + 1 -> unit (r0 / 2) + u of h (f32 and / or x16).
__device__ __forceinline__ void gate_up_store(const float (*part)[16], int parts, int u, int r0, int slot, int t_tok,
                                              int e, const float* __restrict__ x_inv, const uint16_t* __restrict__ bias,
                                              int rows, float limit, float alpha, float* __restrict__ h,
                                              uint32_t* __restrict__ h16) {
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

// grid (16-row tiles, slots): slot s = (token s / k, expert idx[s]); the block's warps split the
// columns (k_parts) and meet in shared memory.
__global__ void __launch_bounds__(256)
    gate_up_kernel(const uint32_t* __restrict__ x16, const float* __restrict__ x_inv, const int32_t* __restrict__ idx,
                   int k, const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                   const uint16_t* __restrict__ bias, int rows, int cols, float limit, float alpha,
                   float* __restrict__ h, uint32_t* __restrict__ h16) {
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16];
  const TimelineBlock timeline(kTimelineGateUp);
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  const int slot = blockIdx.y, t_tok = slot / k, e = idx[slot];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * 16;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = blockDim.x >> 5;
  copy_row_async(xs, x16 + static_cast<size_t>(t_tok) * x16_row_words(cols), x16_row_words(cols));
  float y[2];
  const size_t expert = static_cast<size_t>(e) * rows;
  tile_dot(blocks + expert * nb * 16, nb * 16, scales + expert * nb, r0, nb, warp * nch / parts,
           (warp + 1) * nch / parts, xs, y, wait_row);
  if (t == 0) {
    part[warp][g] = y[0];
    part[warp][g + 8] = y[1];
  }
  __syncthreads();
  if (threadIdx.x >= 8) return;
  gate_up_store(part, parts, threadIdx.x, r0, slot, t_tok, e, x_inv, bias, rows, limit, alpha, h, h16);
}

// MoE variant 1 (NOTES v25; the default where moe_default_gate_up() says so): gate_up as a persistent kernel,
// one block per SM, whose weight tiles come into shared memory by the bulk-copy engine, so that no warp holds
// weights in flight in registers. Block: warp 0 is the producer, then kRingGroups groups of 4 consumer warps, each
// group with one stage (a tile and its scales). The block takes the items (16-row tile, slot) blockIdx.x,
// + gridDim.x, ...; its j-th item goes to group j % kRingGroups, whose warps split the tile's chunks as
// gate_up_kernel's do and meet in shared memory (a named barrier per group; the partial sums double-buffered so
// that the group's next item can start while its warp 0 runs the epilogue). Producer: for each item, once the
// group's previous item is read (empty[g], one arrival per warp), 16 row copies and one of the scales on full[g];
// the T x16 rows come first, once, on xbar. A group's barriers advance one phase per item of its own, so a wait is
// never more than one phase ahead (parity waits cannot alias). Where gate_up_kernel has 4 warps (the 20b's 2880
// columns), the same chunks and sums in the same order: the same bits. Standalone 19.3 vs 21.7 us on the H100
// (NOTES v25: 4 groups 19.5, 6 groups 19.5, 3 groups 20.5). Its 21 warps put 6 on one of the SM's four
// sub-partitions, whose 16K registers then (80 each) hold no warp of down's 4-warp blocks, so down's blocks start
// only as the ring's exit (NOTES v26: with 4 groups at 80 registers they start beside it, but the ring is slower).
constexpr int kRingGroups = 5;

// A staged tile: 16 rows of nb blocks, tile_row_bytes apart (padded so that rows g and g + 1 fall in opposite
// halves of the 32 banks: a quarter warp's 16-byte loads are conflict-free), then its 16 x nb scale bytes.
__host__ __device__ __forceinline__ int tile_row_bytes(int nb) { return nb * 16 + ((48 - nb * 4 % 32) % 32) * 4; }
__host__ __device__ __forceinline__ int tile_stage_bytes(int nb) { return 16 * tile_row_bytes(nb) + ((16 * nb + 15) & ~15); }

// Warp 0 asks for the tile of rows [r0, r0 + 16) into ws on bar (one arrival with the bytes).
__device__ __forceinline__ void stage_tile(uint8_t* ws, const uint8_t* blocks, const uint8_t* scales, int r0, int nb,
                                           uint64_t* bar) {
  const int lane = threadIdx.x & 31;
  if (lane == 0) mbar_arrive_expect_tx(bar, 16 * nb * 16 + 16 * nb);
  __syncwarp();
  if (lane < 16) {
    bulk_copy_g2s_stream(ws + lane * tile_row_bytes(nb), blocks + static_cast<size_t>(r0 + lane) * nb * 16, nb * 16,
                         bar);
  } else if (lane == 16) {
    bulk_copy_g2s_stream(ws + 16 * tile_row_bytes(nb), scales + static_cast<size_t>(r0) * nb, 16 * nb, bar);
  }
}

__global__ void __launch_bounds__(32 + 128 * kRingGroups, 1)
    gate_up_ring_kernel(const uint32_t* __restrict__ x16, const float* __restrict__ x_inv,
                        const int32_t* __restrict__ idx, int T, int k, const uint8_t* __restrict__ blocks,
                        const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, int rows, int cols,
                        float limit, float alpha, float* __restrict__ h, uint32_t* __restrict__ h16) {
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ __align__(8) uint64_t full[kRingGroups], empty[kRingGroups], xbar;
  __shared__ float part[kRingGroups][2][4][16];
  const TimelineBlock timeline(kTimelineGateUp);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nb = cols >> 5, nch = (nb + 3) / 4, tiles = rows / 16, items = tiles * T * k;
  const int row_words = static_cast<int>(x16_row_words(cols)), stage_bytes = tile_stage_bytes(nb);
  uint32_t* xs = reinterpret_cast<uint32_t*>(smem);
  uint8_t* stages = smem + static_cast<size_t>(T) * row_words * 4;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kRingGroups; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], 4);
    }
    mbar_init(&xbar, 1);
  }
  __syncthreads();
  pdl_wait();
  timeline.waited();
  pdl_allow_dependents();
  if (warp == 0) {  // the producer
    if (lane == 0) {
      mbar_arrive_expect_tx(&xbar, T * row_words * 4);
      bulk_copy_g2s(xs, x16, T * row_words * 4, &xbar);
    }
    for (int j = 0, item = blockIdx.x; item < items; ++j, item += gridDim.x) {
      const int s = j % kRingGroups, n = j / kRingGroups;
      if (n > 0) mbar_wait(&empty[s], (n - 1) & 1);
      const int tile = item % tiles, e = idx[item / tiles];
      const size_t expert = static_cast<size_t>(e) * rows;
      stage_tile(stages + static_cast<size_t>(s) * stage_bytes, blocks + expert * nb * 16, scales + expert * nb,
                 tile * 16, nb, &full[s]);
    }
    return;
  }
  const int grp = (warp - 1) >> 2, gw = (warp - 1) & 3, g = lane >> 2, t = lane & 3;
  const uint8_t* ws = stages + static_cast<size_t>(grp) * stage_bytes;
  mbar_wait(&xbar, 0);
  int n = 0;
  for (int item = blockIdx.x + grp * gridDim.x; item < items; item += kRingGroups * gridDim.x, ++n) {
    const int tile = item % tiles, slot = item / tiles, t_tok = slot / k;
    const int e = idx[slot];
    float y[2];
    mbar_wait(&full[grp], n & 1);
    tile_dot<true>(ws, tile_row_bytes(nb), ws + 16 * tile_row_bytes(nb), 0, nb, gw * nch / 4, (gw + 1) * nch / 4,
                   xs + static_cast<size_t>(t_tok) * row_words, y, [] {});
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[grp]);
    float (*pp)[16] = part[grp][n & 1];
    if (t == 0) {
      pp[gw][g] = y[0];
      pp[gw][g + 8] = y[1];
    }
    asm volatile("bar.sync %0, 128;" ::"r"(1 + grp) : "memory");
    if (gw == 0 && lane < 8) {
      gate_up_store(pp, 4, lane, tile * 16, slot, t_tok, e, x_inv, bias, rows, limit, alpha, h, h16);
    }
  }
}

// grid (16-row tiles, slots / kSlots), cluster (1, k / kSlots): the blocks of a (token, 16 rows) pair, each holding
// kSlots expert slots (kSlots x parts warps), form one thread-block cluster (v10); each writes its slots' rows of
// W2[idx[s]] . h[s] + b2 into the cluster's block 0's shared memory, and block 0 forms out[t, rows] (+)= sum_j
// weight[t, j] * y[j] in slot order after the cluster barrier. kPairs (the default at one token, NOTES v51): two
// slots a block (clusters of k / 2 blocks), each warp copying and waiting for only its own slice of its h row (no
// block barrier before its first MMA); otherwise one slot a block, the block copying its h row. The same sums in the
// same order either way: the same bits.
template <bool kPairs>
__global__ void __launch_bounds__(256, kPairs ? 3 : 0)  // kPairs: <= 80 registers, 3 eight-warp blocks per SM
    down_kernel(const uint32_t* __restrict__ h16, const float* __restrict__ h_inv, const int32_t* __restrict__ idx,
                const float* __restrict__ weight, int k, const uint8_t* __restrict__ blocks,
                const uint8_t* __restrict__ scales, const uint16_t* __restrict__ bias, int rows, int cols,
                float* __restrict__ out, bool accumulate, bool idx_ready) {
  const TimelineBlock timeline(kTimelineDown);
  extern __shared__ __align__(16) uint32_t xs[];
  __shared__ float part[8][16];
  __shared__ float ys[8][16];
  // idx_ready: the expert ids were written before the previous kernel (gate_up) started, so the weights
  // are requested before griddepcontrol.wait; only h (gate_up's output) waits for it.
  if (!idx_ready) {
    pdl_allow_dependents();  // v21h: the next kernel's blocks launch while this one waits
    pdl_wait();
    timeline.waited();
  }
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  constexpr int kSlots = kPairs ? 2 : 1;
  const int nb = cols >> 5, nch = (nb + 3) / 4, parts = (blockDim.x >> 5) / kSlots;
  const int sub = warp / parts, q = warp % parts;
  const int slot = blockIdx.y * kSlots + sub, t_tok = slot / k;
  const int e = idx_ready ? __ldcg(idx + slot) : idx[slot];
  const int r0 = blockIdx.x * 16;
  const size_t row_words = x16_row_words(cols);
  const int c0 = q * nch / parts, c1 = (q + 1) * nch / parts;
  uint32_t* xw = xs + sub * row_words;  // this warp's slot's h row
  const uint32_t* hrow = h16 + static_cast<size_t>(slot) * row_words;
  const uint32_t* hblock = h16 + static_cast<size_t>(blockIdx.y) * kSlots * row_words;  // the block's kSlots rows
  auto copy = [&] {
    if constexpr (kPairs) copy_warp_slice_async(xw, hrow, c0, c1);
    else copy_row_async(xs, hblock, kSlots * row_words);
  };
  if (!idx_ready) copy();
  float yt[2];
  const size_t expert = static_cast<size_t>(e) * rows;
  tile_dot(blocks + expert * nb * 16, nb * 16, scales + expert * nb, r0, nb, c0, c1, xw, yt, [&] {
    if (idx_ready) {
      pdl_allow_dependents();  // v21h: the next layer's qkv blocks start while down waits
      pdl_wait();
      timeline.waited();
      copy();
    }
    if constexpr (kPairs) wait_warp_slice();
    else wait_row();
  });
  if (t == 0) {
    part[warp][g] = yt[0];
    part[warp][g + 8] = yt[1];
  }
  __syncthreads();
  auto cluster = cooperative_groups::this_cluster();
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");  // every block of the cluster has started
  if (threadIdx.x < 16 * kSlots) {
    const int s = threadIdx.x / 16, i = threadIdx.x % 16, r = r0 + i;
    const int sl = blockIdx.y * kSlots + s, j = sl % k;
    const int es = idx_ready ? __ldcg(idx + sl) : idx[sl];
    float v = 0.0f;
    for (int qq = 0; qq < parts; ++qq) v += part[s * parts + qq][i];
    const float inv = h_inv != nullptr ? h_inv[sl] : ldexpf(1.0f, -kHScaleLog2);
    cluster.map_shared_rank(&ys[0][0], 0)[j * 16 + i] = v * inv + bf16_to_f32(bias[static_cast<size_t>(es) * rows + r]);
  }
  cluster.sync();
  if (cluster.block_rank() != 0 || threadIdx.x >= 16) return;
  const int r = r0 + threadIdx.x;
  float total = 0.0f;
  for (int jj = 0; jj < k; ++jj) total = fmaf(weight[t_tok * k + jj], ys[jj][threadIdx.x], total);
  float* o = out + static_cast<size_t>(t_tok) * rows + r;
  *o = accumulate ? *o + total : total;
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

// Chunks per warp (sets the warps per block: k_parts).
constexpr int kPerWarp = 6;

// MoE variants (kernels.h): 0 = gate_up_kernel (v16), 1 = gate_up_ring_kernel (v25); the default by
// moe_default_gate_up(); down_kernel for both.
int g_moe_gate_up = -1;  // -1: moe_default_gate_up()
int g_moe_down = kMoeDefaultDown;  // NOTES v51: 1 = 2-slot blocks at one token, 0 = one slot a block

// Launches gate_up_ring_kernel where its shared memory holds the T x16 rows and the groups' stages and the
// tiles and rows are 16-byte aligned (the copy engine's rule); false: not launched (the caller takes
// gate_up_kernel).
bool launch_gate_up_ring(const uint32_t* x16, const float* x_inv, const int32_t* idx, int T, int k,
                         const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                         float limit, float alpha, float* h, uint32_t* h16, cudaStream_t stream) {
  constexpr size_t kBudget = 220 * 1024;  // with the static shared memory, under the 227 KB a block may have
  const size_t smem = static_cast<size_t>(T) * x16_row_words(cols) * 4 +
                      static_cast<size_t>(kRingGroups) * tile_stage_bytes(cols >> 5);
  if ((reinterpret_cast<uintptr_t>(blocks) | reinterpret_cast<uintptr_t>(scales) | reinterpret_cast<uintptr_t>(x16)) %
          16 != 0 ||
      smem > kBudget) {
    return false;
  }
  allow_smem(gate_up_ring_kernel, smem);
  launch_pdl(gate_up_ring_kernel, dim3(std::min(rows / 16 * T * k, sm_count())), dim3(32 + 128 * kRingGroups), smem,
             stream, x16, x_inv, idx, T, k, blocks, scales, bias, rows, cols, limit, alpha, h, h16);
  return true;
}

}  // namespace

GPTOSS_CUDA_TIMELINE_SETTER(set_timeline_moe)

double peak_memory_bandwidth() {
  static const double bw = 2.0 * 1e3 * device_attribute(cudaDevAttrMemoryClockRate) *
                           device_attribute(cudaDevAttrGlobalMemoryBusWidth) / 8;
  return bw;
}

int moe_default_gate_up() { return peak_memory_bandwidth() >= 4e12 ? 0 : 1; }

void set_moe_variant(int gate_up, int down) {
  g_moe_gate_up = std::clamp(gate_up, 0, kMoeVariants - 1);
  g_moe_down = std::clamp(down, 0, kMoeVariants - 1);
}

int moe_gate_up_swiglu(const uint32_t* x16, const float* x_inv, const int32_t* idx, int T, int k,
                       const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                       float limit, float alpha, float* h, uint32_t* h16, cudaStream_t stream) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || (rows / 2) % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  if ((g_moe_gate_up >= 0 ? g_moe_gate_up : moe_default_gate_up()) == 1 &&
      launch_gate_up_ring(x16, x_inv, idx, T, k, blocks, scales, bias, rows, cols, limit, alpha, h, h16, stream)) {
    return static_cast<int>(cudaGetLastError());
  }
  const int warps = k_parts(cols >> 5, kPerWarp);
  const size_t smem = x16_row_words(cols) * 4;
  const dim3 grid(rows / 16, T * k), block(32 * warps);
  allow_smem(gate_up_kernel, smem);
  launch_pdl(gate_up_kernel, grid, block, smem, stream, x16, x_inv, idx, k, blocks, scales, bias, rows, cols, limit,
             alpha, h, h16);
  return static_cast<int>(cudaGetLastError());
}

int moe_down_accumulate(const uint32_t* h16, const float* h_inv, const int32_t* idx, const float* weight, int T, int k,
                        const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                        float* out, bool accumulate, cudaStream_t stream, bool idx_ready) {
  if (T <= 0) return 0;
  if (rows % 16 != 0 || cols % 32 != 0 || k < 1 || k > 8) return static_cast<int>(cudaErrorInvalidValue);
  const int warps = k_parts(cols >> 5, kPerWarp);
  // NOTES v51: 2-slot blocks at one token only (batch 1 +1.3-1.8%; at 4-8 tokens -0.8..-1.0%).
  const bool pairs = g_moe_down == 1 && T == 1 && k % 2 == 0 && 2 * warps <= 8;
  const int slots = pairs ? 2 : 1;
  const size_t smem = slots * x16_row_words(cols) * 4;
  const dim3 grid(rows / 16, T * k / slots), block(32 * warps * slots);
  auto kernel = pairs ? down_kernel<true> : down_kernel<false>;
  allow_smem(kernel, smem);
  launch_pdl_cluster(kernel, grid, block, dim3(1, k / slots, 1), smem, stream, h16, h_inv, idx, weight, k, blocks,
                     scales, bias, rows, cols, out, accumulate, idx_ready);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
