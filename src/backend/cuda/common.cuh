// Device helpers shared by the CUDA kernels: bf16 / E8M0 / MXFP4 decoding, warp reductions and the
// m16n8k16 tensor-core step. Included only by .cu files.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "backend/cuda/kernels.h"

namespace gptoss::cuda {

// bf16 pairs packed in a 32-bit word: element 0 in the low half.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

// E8M0 byte -> 2^(s - 127), exact, including s = 0 (2^-127, a float subnormal) and s = 255 (inf, as
// ldexp gives on the CPU).
__device__ __forceinline__ float e8m0_to_f32(uint32_t s) {
  return s ? __uint_as_float(s << 23) : __uint_as_float(0x00400000u);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Weight streams: read once a step, so they carry an L2 evict-first policy (NOTES v58: +0.8..+2.4% batch-1 decode on
// the H200), leaving the L2's other lines (KV cache, biases, norms, the router's matrix, activations) to outlive the
// step's 3.7 GB stream. Used by the bf16 GEMVs' and the MoE kernels' weight and scale loads and the MoE ring's tile
// copies; not by the grouped GEMM's cp.async copies, whose hinted form stopped at run time with an illegal
// instruction on the H200 (NOTES v58c). -DGPTOSS_CUDA_STREAM_HINT=0 builds plain loads (the comparison build).
#ifndef GPTOSS_CUDA_STREAM_HINT
#define GPTOSS_CUDA_STREAM_HINT 1
#endif
#if GPTOSS_CUDA_STREAM_HINT
__device__ __forceinline__ uint64_t stream_policy() {
  uint64_t p;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
  return p;
}
#endif
__device__ __forceinline__ uint4 ld_stream16(const void* p) {
  uint4 v;
#if GPTOSS_CUDA_STREAM_HINT
  asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p), "l"(stream_policy()));
#else
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
#endif
  return v;
}
// A scale byte or byte pair of a weight stream (T uint8_t or uint16_t), zero-extended.
template <typename T>
__device__ __forceinline__ uint32_t ld_stream_small(const T* p) {
  static_assert(sizeof(T) <= 2, "bytes or byte pairs");
#if GPTOSS_CUDA_STREAM_HINT
  uint16_t v;
  if constexpr (sizeof(T) == 1) {
    asm("ld.global.nc.L2::cache_hint.u8 %0, [%1], %2;" : "=h"(v) : "l"(p), "l"(stream_policy()));
  } else {
    asm("ld.global.nc.L2::cache_hint.u16 %0, [%1], %2;" : "=h"(v) : "l"(p), "l"(stream_policy()));
  }
  return v;
#else
  return __ldg(p);
#endif
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(sel));
  return r;
}

// The E2M1 nibbles' bits placed straight into fp16 fields (NOTES v15; v13's table PRMTs are gone,
// NOTES v16). A nibble s e1 e0 m with e1 e0 m at fp16 bits 9-11 and s at bit 15 is the fp16 value
// E2M1 * 2^-14 exactly (normal codes: 2^(e-15) (1 + m/2); e = 0: the subnormal m * 2^-15), so the
// accumulators hold 2^-14 times the sums and tile_dot multiplies the result by 2^14. Per word and row 11
// shift / LOP3 instructions for the 4 operand registers (elements (k, k+4)): te holds the even nibbles'
// magnitudes at bits 8i..8i+2 and their signs at 8i+6, to the odd ones' at 8i+1..8i+3 and 8i+7.
// One 32-bit word of a block holds eight codes (element 2j in the low nibble of byte j); register k of o gets
// elements (k, k + 4), low half first. The MoE GEMV kernels (moe_mxfp4.cu) and the grouped GEMM (moe_gemm.cu,
// whose table-based decode of ~16 instructions a word this replaced: NOTES v38) scale their block sums by 2^14.
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

// D = A(16x16, row) * B(16x8, col) + C, fp16 inputs, f32 accumulators.
__device__ __forceinline__ void mma_f16_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Attribute a of the device current at the call; 0 where a query fails (its error cleared).
inline int device_attribute(cudaDeviceAttr a) {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, a, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return v;
}

// The SM count of the device current at the first call (at least 1), for sizing grids; one lookup per process.
inline int sm_count() {
  static const int n = std::max(1, device_attribute(cudaDevAttrMultiProcessorCount));
  return n;
}

// Lets `kernel` launch with `bytes` of dynamic shared memory where that is above the 48 KB every kernel may take.
template <typename Kernel>
inline void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

// Shared-memory address of p (a pointer into this block's shared memory) for PTX operands.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// mbarriers (one 64-bit word of shared memory): init with `count` expected arrivals (visible to the
// cluster and to the copy engine after the fence), one arrival that also expects `bytes` of transfers, and
// a spin on the completion of phase `parity`.
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  for (uint32_t done = 0; !done;) {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  }
}

// The bulk-copy engine: `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to this
// block's shared memory, completing on bar's transaction count.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
}
// bulk_copy_g2s for weight streams: with the L2 evict-first policy where GPTOSS_CUDA_STREAM_HINT (ld_stream16).
__device__ __forceinline__ void bulk_copy_g2s_stream(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if GPTOSS_CUDA_STREAM_HINT
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
      ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(stream_policy())
      : "memory");
#else
  bulk_copy_g2s(dst, src, bytes, bar);
#endif
}

// Programmatic dependent launch: a kernel launched with launch_pdl may start while its predecessor
// in the stream is still running. It may only read data that the predecessor does not write (weights)
// before pdl_wait(), which returns once the predecessor has completed and its writes are visible.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_allow_dependents() { asm volatile("griddepcontrol.launch_dependents;"); }

// Timeline records (kernels.h set_timeline), compiled in only where GPTOSS_CUDA_TIMELINE is defined
// (the gptoss_cuda_timeline build; elsewhere TimelineBlock is empty and the kernels are unchanged: the
// code's mere presence made gate_up 15% slower, bench/kernels/cuda/NOTES.md v13). One log per
// translation unit (no relocatable device code), all set by set_timeline through the setters below.
// TimelineBlock in a kernel's body: the constructor stamps the start, waited() the return of
// griddepcontrol.wait, the destructor the end (thread 0 of the block; other threads do nothing). The
// record's index lives in shared memory, so no register stays live through the kernel.
#ifdef GPTOSS_CUDA_TIMELINE
struct TimelineLog {
  TimelineRecord* rec;
  uint32_t* count;
  uint32_t capacity;
};
static __constant__ TimelineLog g_timeline = {nullptr, nullptr, 0};
int set_timeline_attention(const TimelineLog& log);
int set_timeline_gemv(const TimelineLog& log);
int set_timeline_moe(const TimelineLog& log);
int set_timeline_router(const TimelineLog& log);
#define GPTOSS_CUDA_TIMELINE_SETTER(name) \
  int name(const TimelineLog& log) { return static_cast<int>(cudaMemcpyToSymbol(g_timeline, &log, sizeof log)); }

__device__ __forceinline__ unsigned long long globaltimer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ uint32_t* timeline_slot() {
  __shared__ uint32_t slot;
  return &slot;
}
struct TimelineBlock {
  __device__ __forceinline__ explicit TimelineBlock(uint32_t kind) {
    if (threadIdx.x == 0 && g_timeline.rec != nullptr) {
      const unsigned long long t = globaltimer_ns();
      const uint32_t i = atomicAdd(g_timeline.count, 1u);
      *timeline_slot() = i;
      if (i < g_timeline.capacity) {
        g_timeline.rec[i] = {t, 0ull, 0ull, kind, gridDim.x * gridDim.y * gridDim.z};
      }
    }
  }
  __device__ __forceinline__ void waited() const { stamp(1); }
  __device__ __forceinline__ ~TimelineBlock() { stamp(2); }
  __device__ __forceinline__ static void stamp(int what) {
    if (threadIdx.x == 0 && g_timeline.rec != nullptr) {
      const unsigned long long t = globaltimer_ns();
      const uint32_t i = *timeline_slot();
      if (i < g_timeline.capacity) (what == 1 ? g_timeline.rec[i].wait : g_timeline.rec[i].end) = t;
    }
  }
};
#else
#define GPTOSS_CUDA_TIMELINE_SETTER(name)
struct TimelineBlock {
  __device__ __forceinline__ explicit TimelineBlock(uint32_t) {}
  __device__ __forceinline__ void waited() const {}
};
#endif

// Whether launch_pdl asks for overlap (set_pdl; default on). Off, it is a plain launch.
bool pdl_enabled();

// launch_pdl for a kernel whose blocks form thread-block clusters of `cluster` blocks (cluster.x == 0:
// no cluster attribute, a plain launch_pdl).
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, dim3 cluster, size_t smem,
                               cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (cluster.x > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster.x;
    attr[n].val.clusterDim.y = cluster.y;
    attr[n].val.clusterDim.z = cluster.z;
    ++n;
  }
  if (pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                       Args&&... args) {
  return launch_pdl_cluster(kernel, grid, block, dim3(0, 0, 0), smem, stream, std::forward<Args>(args)...);
}

// Top k of n <= 32 * kPer values held by one warp (v[j] is the value of index lane + 32 j; lanes past n
// hold anything), descending with ties to the lower index, and a softmax over those k (k <= 8): lane 0
// writes idx[0, k) and weight[0, k). v is consumed.
template <int kPer>
__device__ __forceinline__ void warp_topk_softmax(float (&v)[kPer], int n, int k, int32_t* idx, float* weight) {
  const int lane = threadIdx.x & 31;
  float sel_val[8];
  int sel_idx[8];
  for (int r = 0; r < k; ++r) {
    float best = -INFINITY;
    int best_e = 0x7fffffff;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int e = lane + 32 * j;
      if (e < n && (v[j] > best || (v[j] == best && e < best_e))) best = v[j], best_e = e;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
      if (ob > best || (ob == best && oe < best_e)) best = ob, best_e = oe;
    }
    sel_val[r] = best;
    sel_idx[r] = best_e;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      if (lane + 32 * j == best_e) v[j] = -INFINITY;
    }
  }
  if (lane == 0) {
    float sum = 0.0f, w[8];
    for (int r = 0; r < k; ++r) {
      w[r] = expf(sel_val[r] - sel_val[0]);
      sum += w[r];
    }
    for (int r = 0; r < k; ++r) {
      idx[r] = sel_idx[r];
      weight[r] = w[r] / sum;
    }
  }
}

}  // namespace gptoss::cuda
