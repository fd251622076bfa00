// Grouped MoE GEMM for prefill on tensor cores, reading the MXFP4 experts as they are (moe_gemm.h).
//
// One launch covers every used expert: moe_group_slots lists token tiles (expert, first sorted slot,
// count <= kBN) on the device and the grid is (row tile, token tile), sized for the most tiles possible. A block computes kBM weight rows x kBN slots of one
// expert. The K loop streams kKC MXFP4 blocks per stage through shared memory with cp.async (kStages
// deep): the weight rows as raw bytes (16 per block) and the slots' x16 rows (x16.cuh: fp16 hi and lo
// halves, 32 words per block), zero-filled beyond the matrix and beyond the tile's slots.
//
// MMA mapping (m16n8k16, A = weights row-major, B = slots): lane (g, t) takes word t of an MXFP4
// block for rows g and g + 8 and decodes it exactly to fp16 times 2^-14 (e2m1_direct: register k holds
// elements (k, k + 4) of the word). Step 0 of the block's two k16 steps uses registers 0 and 1, step 1
// registers 2 and 3; B needs the same elements of the slot's row, which is what x16's in-group order
// (0, 4, 1, 5, 2, 6, 3, 7) gives: words 4t..4t+3 of the hi (or lo) half. The four MMAs of a block (two
// k16 steps x hi/lo) add into a block accumulator, which is then multiplied by the block's E8M0 scale times
// 2^14 (exact: a power of two) and added to the f32 result: the sums are those of an f32 GEMM on the
// decoded weights, rounded once per 32-element block.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "backend/cuda/common.cuh"
#include "backend/cuda/moe_gemm.h"
#include "backend/cuda/x16.cuh"

namespace gptoss::cuda {
namespace {

constexpr int kBN = kMoeGemmTileSlots;   // slots per block
// Block shapes: WM warps along the weight rows, each with MT 16-row tiles, and kWarps / WM warps along
// the slots, each with NT 8-slot tiles (kWarps / WM * NT * 8 == kBN). A block has kBM = WM * 16 * MT
// rows; more rows per block means fewer reads of the (4-byte-per-element) x16 inputs from L2 per MMA.
// kDense: the A operand is a dense fp16 matrix (f16_rows below: 64 bytes per 32 columns, 32 words
// of data + 16 of padding per row and block pair... see Tile::kAStride) instead of MXFP4 blocks.
// BN: slots per block (kBN for prefill; 8 or 16 for decode batches, whose experts get a few slots
// each: the MMAs and the slot loads of a block scale with BN, its weight loads do not).
// KC: MXFP4-size blocks of K per pipeline stage; MinB: the blocks per SM the registers are capped for (0: the
// default below); ST: pipeline stages (0: the default below); kScaleAsync: the block's scale bytes by cp.async
// (16-byte aligned ranges) instead of byte loads before the K loop (the prefill tiles spill with it).
template <int WM, int MT, int NT, bool kDense = false, int kWarps = 8, int BN = kBN, int KC = 2, int MinB = 0,
          int ST = 0, bool kScaleAsync = false>
struct Tile {
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWN = kWarps / WM;
  static constexpr int kKC = KC;
  // Per slot and stage: 32 words of data per block + 16 of padding (a quarter warp's 16-byte loads of rows g
  // and g + 1 then start 16 banks apart).
  static constexpr int kBStrideWords = 32 * KC + 16;
  static constexpr int kBStageWords = BN * kBStrideWords;
  static_assert(kWN * NT * 8 == BN, "the warps along the slots must cover BN");
  static_assert(BN <= kThreads, "one thread per slot loads the slot's rows");
  static constexpr int kBM = WM * 16 * MT;
  // Per weight row and stage: MXFP4 4 words of data per block + 4 of padding (rows g = 0..7 then fall in
  // distinct groups of 4 banks); fp16 (KC = 2 only) 32 words + 16 (rows g and g + 1 then start 16 banks
  // apart, so a quarter warp's 16-byte loads do not conflict).
  static_assert(!kDense || KC == 2, "the dense A layout is for 2 blocks a stage");
  static constexpr int kAStride = kDense ? 48 : 4 * KC + 4;
  static constexpr int kStages = ST > 0 ? ST : kDense ? 2 : 3;
  static constexpr int kAStageWords = kBM * kAStride;
  static constexpr int kStageWords = kAStageWords + kBStageWords;
  static constexpr int kBlocksPerSm = MinB > 0 ? MinB : kBM <= 128 && kWarps == 8 ? 2 : 1;
  static constexpr size_t smem_bytes(int nb) {
    return static_cast<size_t>(kStages) * kStageWords * 4 + (kDense ? 0 : ((kBM * nb + 15) & ~15)) + 3 * BN * 4;
  }
};

__device__ __forceinline__ void cp_async16(uint32_t* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ float swiglu(float gate, float up, float limit, float alpha) {
  gate = fminf(gate, limit);
  up = fmaxf(fminf(up, limit), -limit);
  return (up + 1.0f) * (gate * (1.0f / (1.0f + expf(-(gate * alpha)))));
}

struct Args {
  const uint32_t* x16;
  const float* x_inv;
  const int32_t* src;    // sorted slot -> x16 row
  const int32_t* dst;    // sorted slot -> output row
  const int32_t* tiles;  // [3][max_tiles]: expert, first sorted slot, count; then the number of tiles
  int max_tiles;
  const uint8_t* blocks;  // MXFP4 blocks, or (kDense) the f16_rows matrix
  const uint8_t* scales;  // E8M0 scales, or (kDense) w_inv [rows] as floats
  const uint16_t* bias;   // may be null when kDense
  int rows, cols;
  bool swiglu;
  float limit, alpha;
  float* out;
  float* ws = nullptr;  // kDense split K: partial sums [gridDim.z][T][rows], bias added by the reduction
  int kb_per_split = 0;
  // MXFP4 only: skip the MMAs (and, for a warp with none left, the weight decode) of 8-slot column tiles
  // that lie wholly beyond the tile's count (a tile holds an expert's last slots, often far fewer than BN).
  bool skip_empty = false;
};

template <int WM, int MT, int NT, bool kDense, int kWarps, int BN, int KC, int MinB, int ST, bool kScaleAsync>
__global__ void __launch_bounds__(Tile<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync>::kThreads,
                                  Tile<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync>::kBlocksPerSm)
    moe_gemm_kernel(const Args p) {
  using Sh = Tile<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync>;
  constexpr int kThreads = Sh::kThreads, kKC = Sh::kKC, kBStrideWords = Sh::kBStrideWords;
  constexpr int kBM = Sh::kBM, kAStageWords = Sh::kAStageWords, kStageWords = Sh::kStageWords;
  constexpr int kStages = Sh::kStages, kAS = Sh::kAStride;
  extern __shared__ __align__(16) uint32_t smem[];
  const int nb = p.cols >> 5;
  uint8_t* sc = reinterpret_cast<uint8_t*>(smem + kStages * kStageWords);  // [kBM][nb] scale bytes
  int32_t* s_src = reinterpret_cast<int32_t*>(sc + (kDense ? 0 : ((kBM * nb + 15) & ~15)));
  int32_t* s_dst = s_src + BN;
  float* s_inv = reinterpret_cast<float*>(s_dst + BN);

  const int tile = blockIdx.y, row0 = blockIdx.x * kBM;
  int e = 0, first = tile * BN, count = min(BN, p.max_tiles - first);  // kDense: max_tiles = T rows
  if (!kDense) {
    if (tile >= p.tiles[3 * p.max_tiles]) return;  // the grid is sized for the most tiles S slots can need
    e = p.tiles[tile], first = p.tiles[p.max_tiles + tile], count = p.tiles[2 * p.max_tiles + tile];
  }
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3, wm = warp % WM, wn = warp / WM;
  // This warp's 8-slot column tiles that hold slots (warp-uniform: its first ones); the rest only load
  // and wait. The dense GEMM (one partial tile at most) computes every column tile.
  const int nt_here = !kDense && p.skip_empty ? max(0, min(NT, ((count + 7) >> 3) - wn * NT)) : NT;

  if (tid < BN) {
    const bool in = tid < count;
    const int s = in ? (kDense ? first + tid : p.src[first + tid]) : 0;
    s_src[tid] = s;
    s_dst[tid] = in ? (kDense ? first + tid : p.dst[first + tid]) : -1;
    s_inv[tid] = in ? p.x_inv[s] : 0.0f;
  }
  const size_t erow0 = static_cast<size_t>(e) * p.rows + row0;
  const int rows_here = min(kBM, p.rows - row0);
  const uint8_t* sg = p.scales + erow0 * nb;
  const int n_sc = rows_here * nb;
  // The block's scale bytes: byte loads before the K loop, or (kScaleAsync, when the range is 16-byte aligned)
  // by cp.async in the first stage's group, so that the weights' first loads do not queue behind them; the K
  // loop's first wait and barrier cover them.
  const bool sc_async = kScaleAsync && (reinterpret_cast<uintptr_t>(sg) & 15) == 0 && (n_sc & 15) == 0;
  if (!kDense && !sc_async) {
    for (int i = tid; i < kBM * nb; i += kThreads) sc[i] = i < n_sc ? sg[i] : 0;
  }
  __syncthreads();
  if (!kDense && sc_async) {
    for (int i = tid; i < (n_sc >> 4); i += kThreads) cp_async16(reinterpret_cast<uint32_t*>(sc) + 4 * i, sg + 16 * i, true);
    for (int i = n_sc + tid; i < kBM * nb; i += kThreads) sc[i] = 0;
  }

  const size_t row_words = x16_row_words(p.cols);
  // kDense with p.ws: this block sums the MXFP4-block range [kb0, kb_end) of the columns (split K).
  const int kb0 = p.ws != nullptr ? static_cast<int>(blockIdx.z) * p.kb_per_split : 0;
  const int kb_end = p.ws != nullptr ? min(nb, kb0 + p.kb_per_split) : nb;
  const int total = (kb_end - kb0 + kKC - 1) / kKC;
  auto load_stage = [&](int st, int buf) {
    uint32_t* A = smem + buf * kStageWords;
    uint32_t* B = A + kAStageWords;
    const int kb = kb0 + st * kKC;
    if (kDense) {
#pragma unroll
      for (int c = tid; c < kBM * kKC * 4; c += kThreads) {  // weights: kBM rows x kKC blocks of 64 bytes
        const int r = c >> 3, b = (c >> 2) & 1, q = c & 3;
        const bool ok = r < rows_here && kb + b < kb_end;
        const uint8_t* src = ok ? p.blocks + ((erow0 + r) * nb + kb + b) * 64 + q * 16 : p.blocks;
        cp_async16(A + r * kAS + b * 16 + q * 4, src, ok);
      }
    } else {
#pragma unroll
      for (int c = tid; c < kBM * kKC; c += kThreads) {  // weights: kBM rows x kKC blocks of 16 bytes
        const int r = static_cast<unsigned>(c) / kKC, b = static_cast<unsigned>(c) % kKC;  // c >= 0
        const bool ok = r < rows_here && kb + b < kb_end;
        const uint8_t* src = ok ? p.blocks + ((erow0 + r) * nb + kb + b) * 16 : p.blocks;
        cp_async16(A + r * kAS + b * 4, src, ok);
      }
    }
#pragma unroll
    for (int i = 0; i < (BN * kKC * 8 + kThreads - 1) / kThreads; ++i) {  // slots: BN x kKC blocks x 8 chunks
      const int c = tid + i * kThreads, q = c & 7;                                           // of 16 bytes
      const int j = static_cast<unsigned>(c) / (8 * kKC), b = (static_cast<unsigned>(c) >> 3) % kKC;
      if (BN * kKC * 8 % kThreads != 0 && c >= BN * kKC * 8) break;
      const bool ok = j < count && kb + b < kb_end;
      const uint32_t* src =
          ok ? p.x16 + static_cast<size_t>(s_src[j]) * row_words + static_cast<size_t>(kb + b) * kX16BlockWords + q * 4
             : p.x16;
      cp_async16(B + j * kBStrideWords + b * 32 + q * 4, src, ok);
    }
  };

  float acc[MT][NT][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int n = 0; n < NT; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < total) load_stage(s, s);
    cp_async_commit();
  }
  for (int it = 0; it < total; ++it) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    if (it + kStages - 1 < total) load_stage(it + kStages - 1, (it + kStages - 1) % kStages);
    cp_async_commit();
    const uint32_t* A = smem + (it % kStages) * kStageWords;
    const uint32_t* B = A + kAStageWords;
    // The MMAs of this stage over the warp's first nth column tiles: all NT (kFull, the loops unrolled
    // with no test) or nt_here of them (a warp-uniform test per column tile).
    const auto stage_mma = [&](auto full) {
      constexpr bool kFull = decltype(full)::value;
      const int nth = kFull ? NT : nt_here;
#pragma unroll
      for (int b = 0; b < kKC; ++b) {
        const int kb = kb0 + it * kKC + b;
        if (kb >= kb_end) break;
        uint32_t ra[MT][2][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const int r = wm * 16 * MT + m * 16 + g;
          if (kDense) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const uint4 v = *reinterpret_cast<const uint4*>(A + (r + 8 * h) * kAS + b * 16 + t * 4);
              ra[m][h][0] = v.x, ra[m][h][1] = v.y, ra[m][h][2] = v.z, ra[m][h][3] = v.w;
            }
          } else {
            e2m1_direct(A[r * kAS + b * 4 + t], ra[m][0]);  // values x 2^-14: the scales below take 2^14
            e2m1_direct(A[(r + 8) * kAS + b * 4 + t], ra[m][1]);
          }
        }
        // The rows' scales first, then per column tile its block accumulators, each added to the result right
        // after its four MMAs (NOTES v50: only one column tile's block accumulators live at a time; each result
        // word takes the same FMAs in the same order as before).
        float s0[MT], s8[MT];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const int r = wm * 16 * MT + m * 16 + g;
          s0[m] = kDense ? 1.0f : e8m0_to_f32(sc[r * nb + kb]) * 16384.0f;
          s8[m] = kDense ? 1.0f : e8m0_to_f32(sc[(r + 8) * nb + kb]) * 16384.0f;
        }
#pragma unroll
        for (int n = 0; n < NT; ++n) {
          if (n >= nth) break;
          const int j = wn * 8 * NT + n * 8 + g;
          const uint4 hi = *reinterpret_cast<const uint4*>(B + j * kBStrideWords + b * 32 + t * 4);
          const uint4 lo = *reinterpret_cast<const uint4*>(B + j * kBStrideWords + b * 32 + 16 + t * 4);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t a0[4] = {ra[m][0][0], ra[m][1][0], ra[m][0][1], ra[m][1][1]};
            const uint32_t a1[4] = {ra[m][0][2], ra[m][1][2], ra[m][0][3], ra[m][1][3]};
            mma_f16_16816(c, a0, hi.x, hi.y);
            mma_f16_16816(c, a0, lo.x, lo.y);
            mma_f16_16816(c, a1, hi.z, hi.w);
            mma_f16_16816(c, a1, lo.z, lo.w);
            acc[m][n][0] = fmaf(c[0], s0[m], acc[m][n][0]);
            acc[m][n][1] = fmaf(c[1], s0[m], acc[m][n][1]);
            acc[m][n][2] = fmaf(c[2], s8[m], acc[m][n][2]);
            acc[m][n][3] = fmaf(c[3], s8[m], acc[m][n][3]);
          }
        }
      }
    };
    if (kDense || nt_here == NT) {
      stage_mma(std::true_type{});
    } else if (nt_here > 0) {  // 0: no slots in this warp's columns, nothing to multiply
      stage_mma(std::false_type{});
    }
  }
  cp_async_wait<0>();

  // Epilogue: y = acc * 2^-p of the slot's row + bias; SwiGLU pairs rows 2u (gate) and 2u + 1 (up),
  // which sit in lanes g and g + 1 (lane ^ 4).
  const uint16_t* bias = p.bias != nullptr ? p.bias + static_cast<size_t>(e) * p.rows : nullptr;
  const float* w_inv = reinterpret_cast<const float*>(p.scales);
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int rl = wm * 16 * MT + m * 16 + g + 8 * h, r = row0 + rl;
      const float bv = r < p.rows && bias != nullptr ? bf16_to_f32(bias[r]) : 0.0f;
      const float wi = kDense && r < p.rows ? w_inv[r] : 1.0f;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int j = wn * 8 * NT + n * 8 + 2 * t + c;
          const float raw = kDense ? acc[m][n][2 * h + c] * s_inv[j] * wi : acc[m][n][2 * h + c] * s_inv[j];
          const float y = raw + bv;
          const bool ok = r < p.rows && j < count;
          if (p.swiglu) {
            const float up = __shfl_xor_sync(0xffffffffu, y, 4);
            if (ok && (g & 1) == 0) {
              p.out[static_cast<size_t>(s_dst[j]) * (p.rows >> 1) + (r >> 1)] = swiglu(y, up, p.limit, p.alpha);
            }
          } else if (kDense && p.ws != nullptr) {
            if (ok) {
              p.ws[(static_cast<size_t>(blockIdx.z) * p.max_tiles + s_dst[j]) * p.rows + r] = raw;
            }
          } else if (ok) {
            p.out[static_cast<size_t>(s_dst[j]) * p.rows + r] = y;
          }
        }
      }
    }
  }
}

// GPTOSS_CUDA_MOE_GEMM_SHAPE picks the block shape: 0 = 4 x 2 row tiles, 2 x 4 slot tiles (128 rows, 3 stages,
// 2 blocks an SM); 1 = 2 x 4 row tiles, 4 x 2 slot tiles (128 rows, half the B-operand loads per MMA, twice the
// A); 2 = 4 x 4 row tiles, 2 x 4 slot tiles (256 rows, one block per SM); 3 = 8 x 2 row tiles, 2 x 4 slot tiles
// (256 rows, 16 warps, one block per SM: shape 0's warps, half its input traffic); 4 = shape 0 with 2 stages and
// registers for 3 blocks an SM (24 warps instead of 16; 80 registers, 8 bytes of spills); 5 (the default, NOTES
// v50) = 4 with the block's scale bytes by cp.async in the first stage's group (12 bytes of spills).
int tile_shape() {
  const char* v = std::getenv("GPTOSS_CUDA_MOE_GEMM_SHAPE");  // read per launch (a few ns)
  const int s = v != nullptr ? std::atoi(v) : kMoeGemmDefaultShape;
  return s >= 0 && s <= 5 ? s : kMoeGemmDefaultShape;
}

// GPTOSS_CUDA_MOE_GEMM_SKIP=0 computes every column tile of a block, the empty ones too (before v23);
// default 1 (Args::skip_empty). Read per launch, as tile_shape().
bool skip_empty() {
  const char* v = std::getenv("GPTOSS_CUDA_MOE_GEMM_SKIP");
  return v == nullptr || std::atoi(v) != 0;
}

template <int WM, int MT, int NT, bool kDense = false, int kWarps = 8, int BN = kBN, int KC = 2, int MinB = 0, int ST = 0,
          bool kScaleAsync = false>
int launch(Args a, cudaStream_t stream) {
  a.skip_empty = skip_empty();
  using Sh = Tile<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync>;
  const size_t smem = Sh::smem_bytes(a.cols / 32);
  const int y_blocks = kDense ? (a.max_tiles + BN - 1) / BN : a.max_tiles;
  if (smem > 227 * 1024 || y_blocks > 65535) return static_cast<int>(cudaErrorInvalidValue);
  if (auto e = cudaFuncSetAttribute(moe_gemm_kernel<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      e != cudaSuccess) {
    return static_cast<int>(e);
  }
  const dim3 grid((a.rows + Sh::kBM - 1) / Sh::kBM, y_blocks,
                  a.ws != nullptr ? (a.cols / 32 + a.kb_per_split - 1) / a.kb_per_split : 1);
  moe_gemm_kernel<WM, MT, NT, kDense, kWarps, BN, KC, MinB, ST, kScaleAsync><<<grid, Sh::kThreads, smem, stream>>>(a);
  return static_cast<int>(cudaGetLastError());
}
}  // namespace

int moe_gemm_mxfp4(const uint32_t* x16, const float* x_inv, const int32_t* src, const int32_t* dst,
                   const int32_t* tiles, int max_tiles, const uint8_t* blocks, const uint8_t* scales,
                   const uint16_t* bias, int rows, int cols, bool swiglu_out, float limit, float alpha, float* out,
                   cudaStream_t stream, int tile_slots) {
  if (max_tiles <= 0) return 0;
  if (cols % 32 != 0 || (swiglu_out && rows % 2 != 0)) return static_cast<int>(cudaErrorInvalidValue);
  const Args a{x16, x_inv, src, dst, tiles, max_tiles, blocks, scales, bias, rows, cols, swiglu_out, limit, alpha, out};
  // Decode tiles (NOTES v39, v46): 4 warps of 32 rows each (128 rows; each slot word read from shared memory serves
  // two row tiles), one or two 8-slot MMA columns per warp; 6 MXFP4 blocks a stage, 2 stages, the scales by cp.async;
  // registers capped for 5 (8 slots) or 3 (16) blocks an SM.
  if (tile_slots == 8) return launch<4, 2, 1, false, 4, 8, 6, 5, 2, true>(a, stream);
  if (tile_slots == 16) return launch<4, 2, 2, false, 4, 16, 6, 3, 2, true>(a, stream);
  if (tile_slots != kBN) return static_cast<int>(cudaErrorInvalidValue);
  switch (tile_shape()) {
    case 1: return launch<2, 4, 2>(a, stream);
    case 2: return launch<4, 4, 4>(a, stream);
    case 3: return launch<8, 2, 4, false, 16>(a, stream);
    case 0: return launch<4, 2, 4>(a, stream);
    case 4: return launch<4, 2, 4, false, 8, kBN, 2, 3, 2>(a, stream);
    default: return launch<4, 2, 4, false, 8, kBN, 2, 3, 2, true>(a, stream);
  }
}

namespace {

constexpr int kGroupMaxExperts = 256;

// One block: counts the slots per expert, places each slot in its expert's range (the order within
// an expert is the atomics' order; every slot is computed alone, so results do not depend on it) and
// cuts the ranges into tiles of bn slots. Expert ids outside [0, E) are dropped (their slots stay unwritten;
// the router never produces them) and, when bad is not null, reported there: bad[0] counts them, the
// first one counted leaves its id, slot and E in bad[1..3].
__global__ void moe_group_kernel(const int32_t* __restrict__ idx, int S, int k, int E, bool gate_up,
                                 int32_t* __restrict__ sorted, int32_t* __restrict__ tiles, int max_tiles, int bn,
                                 int32_t* bad) {
  __shared__ int count[kGroupMaxExperts], off[kGroupMaxExperts], tile0[kGroupMaxExperts + 1];
  for (int e = threadIdx.x; e < E; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const int e = idx[s];
    if (e >= 0 && e < E) {
      atomicAdd(&count[e], 1);
    } else if (bad != nullptr && atomicAdd(&bad[0], 1) == 0) {
      bad[1] = e;
      bad[2] = s;
      bad[3] = E;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int o = 0, tl = 0;
    for (int e = 0; e < E; ++e) {
      off[e] = o;
      tile0[e] = tl;
      o += count[e];
      tl += (count[e] + bn - 1) / bn;
      count[e] = 0;
    }
    tile0[E] = tl;
    tiles[3 * max_tiles] = tl;
  }
  __syncthreads();
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const int e = idx[s];
    if (e < 0 || e >= E) continue;
    const int i = off[e] + atomicAdd(&count[e], 1);
    sorted[i] = gate_up ? s / k : s;
    sorted[S + i] = s;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    const int n = count[e];
    for (int q = tile0[e]; q < tile0[e + 1]; ++q) {
      const int f = (q - tile0[e]) * bn;
      tiles[q] = e;
      tiles[max_tiles + q] = off[e] + f;
      tiles[2 * max_tiles + q] = min(bn, n - f);
    }
  }
}

}  // namespace

namespace {

// One block per row: w_inv[r] = 2^-p with max |w[r]| * 2^p < 2^14, out[r] = fp16(w[r] * 2^p) with each
// group of 8 columns in the x16 order (0, 4, 1, 5, 2, 6, 3, 7).
__global__ void f16_rows_kernel(const uint16_t* __restrict__ w, int cols, uint16_t* __restrict__ out,
                                float* __restrict__ w_inv) {
  __shared__ float red[32];
  const int r = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint16_t* wr = w + static_cast<size_t>(r) * cols;
  float mx = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, fabsf(bf16_to_f32(wr[c])));
  mx = warp_max(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  for (int q = 0; q < static_cast<int>(blockDim.x >> 5); ++q) mx = fmaxf(mx, red[q]);
  const int pw = x16_exponent(mx);
  const float up = ldexpf(1.0f, pw);
  __half* o = reinterpret_cast<__half*>(out + static_cast<size_t>(r) * cols);
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const int el = c & 7, perm = el < 4 ? 2 * el : 2 * (el - 4) + 1;
    o[(c & ~7) + perm] = __float2half_rn(bf16_to_f32(wr[c]) * up);
  }
  if (threadIdx.x == 0) w_inv[r] = ldexpf(1.0f, -pw);
}

}  // namespace

int f16_rows(const uint16_t* w, int rows, int cols, uint16_t* out, float* w_inv, cudaStream_t stream) {
  if (cols % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  if (rows > 0) f16_rows_kernel<<<rows, 256, 0, stream>>>(w, cols, out, w_inv);
  return static_cast<int>(cudaGetLastError());
}

namespace {

__global__ void split_sum_kernel(const float* __restrict__ ws, int splits, size_t n, int rows,
                                 const uint16_t* __restrict__ bias, float* __restrict__ out, bool add_to_out) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float v = 0.0f;
    for (int z = 0; z < splits; ++z) v += ws[z * n + i];
    const float y = v + (bias != nullptr ? bf16_to_f32(bias[i % rows]) : 0.0f);
    out[i] = add_to_out ? out[i] + y : y;
  }
}

}  // namespace

namespace {
// Slots per dense tile: decode batches (NOTES v39) take 16 or 32-slot tiles, whose blocks do no MMAs for
// slots they do not have; 64 (kBN) above 32.
int dense_tile_slots(int T) { return T <= 16 ? 16 : T <= 32 ? 32 : kBN; }
}  // namespace

int dense_gemm_splits(int T, int rows, int cols) {
  const int bn = dense_tile_slots(T);
  const int blocks = ((rows + 127) / 128) * ((T + bn - 1) / bn), nb = cols / 32;
  const int want = 2 * sm_count() / blocks;  // split only grids that fill at most half the block slots
  return std::max(1, std::min(want, nb / 4));                // at least 4 MXFP4-size blocks of K per split
}

int dense_gemm_x16(const uint32_t* x16, const float* x_inv, int T, const uint16_t* w16, const float* w_inv,
                   const uint16_t* bias, int rows, int cols, float* out, float* ws, cudaStream_t stream,
                   bool add_to_out) {
  if (T <= 0) return 0;
  if (cols % 32 != 0) return static_cast<int>(cudaErrorInvalidValue);
  // add_to_out: the product goes through ws and the split sum adds it to out (one split where the grid needs none).
  if (add_to_out && ws == nullptr) return static_cast<int>(cudaErrorInvalidValue);
  Args a{x16, x_inv, nullptr, nullptr, nullptr, T, reinterpret_cast<const uint8_t*>(w16),
         reinterpret_cast<const uint8_t*>(w_inv), bias, rows, cols, false, 0.0f, 0.0f, out};
  const int splits = ws != nullptr ? dense_gemm_splits(T, rows, cols) : 1;
  if (splits > 1 || add_to_out) {
    a.ws = ws;
    a.kb_per_split = (cols / 32 + splits - 1) / splits;
  }
  const char* v = std::getenv("GPTOSS_CUDA_DENSE_GEMM_SHAPE");  // 3: 256-row blocks of 16 warps
  // 16 and 32-slot tiles with 3 stages (NOTES v39: +1.5% over 2 at 8-32 sequences).
  const int bn = dense_tile_slots(T);
  const int e = bn == 16   ? launch<8, 1, 2, true, 8, 16, 2, 0, 3>(a, stream)
                : bn == 32 ? launch<8, 1, 4, true, 8, 32, 2, 0, 3>(a, stream)
                : v != nullptr && std::atoi(v) == 3 ? launch<8, 2, 4, true, 16>(a, stream)
                                                    : launch<4, 2, 4, true>(a, stream);
  if (e != 0 || a.ws == nullptr) return e;
  const int nz = (cols / 32 + a.kb_per_split - 1) / a.kb_per_split;  // splits actually launched
  const size_t n = static_cast<size_t>(T) * rows;
  const int grid = static_cast<int>(std::min<size_t>((n + 255) / 256, 4096));
  split_sum_kernel<<<grid, 256, 0, stream>>>(ws, nz, n, rows, bias, out, add_to_out);
  return static_cast<int>(cudaGetLastError());
}

int moe_gemm_max_tiles(int S, int E, int tile_slots) { return (S + tile_slots - 1) / tile_slots + E; }

int moe_group_slots(const int32_t* idx, int S, int k, int E, bool gate_up, int32_t* sorted, int32_t* tiles,
                    cudaStream_t stream, int tile_slots, int32_t* bad) {
  if (E > kGroupMaxExperts || S <= 0 || tile_slots < 1) return static_cast<int>(cudaErrorInvalidValue);
  moe_group_kernel<<<1, 1024, 0, stream>>>(idx, S, k, E, gate_up, sorted, tiles,
                                           moe_gemm_max_tiles(S, E, tile_slots), tile_slots, bad);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace gptoss::cuda
