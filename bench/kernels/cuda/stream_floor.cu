// The "one kernel per op" floor of a batch-1 decode step (bench/kernels/cuda/NOTES.md v28): a step of
// kernels that do nothing but read the bytes each decode kernel reads (per layer qkv, attention's KV, o_proj,
// the router, gate_up's 4 experts, down's 4; then the unembedding and the argmax's logits), each from its own
// region of one buffer (so no kernel finds another's bytes in L2), timed as the decode engine runs its step.
// It says how much of the copy roofline a step of that many dependent kernels can reach at all, before any
// arithmetic or latency chain of the real kernels:
//   stream      plain launches on a stream;
//   graph       the same launches captured in a CUDA graph;
//   graph+pdl   the graph with programmatic dependent launch, each kernel reading only after
//               griddepcontrol.wait (dependent reads: what a kernel whose loads need its input can do);
//   graph+early the graph with PDL, each kernel reading before griddepcontrol.wait (what weights read before
//               the wait allow: the next kernel's reads overlap the previous one's as far as residency lets);
//   graph+deps  as graph+early, but gate_up reads after its wait (its experts are the router's output, the one
//               weight read of the step that depends on the kernel before): the decode step's dependency
//               structure with no arithmetic.
// Usage: gptoss_cuda_stream_floor [steps=20] [layers=24] [keep=111111]. keep: which of the layer's six kernels
// (qkv attention o_proj router gate_up down) stay kernels of their own; a 0 adds that kernel's bytes to the
// kernel before it (e.g. 101011: attention read by qkv's kernel, the router by o_proj's), for the floor of a
// step with fewer kernels per layer. Bytes and the copy bandwidth (D2D, read + written,
// the lab's convention) are printed with each mode's step time, tok/s and % of the roofline.
// Then the same ops in one persistent kernel (NOTES.md v34; persistent_kernel and dynamic_kernel below): the step
// as one launch of one block per SM, with a grid-wide barrier where each kernel boundary was.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/common.cuh"  // the mbarrier and bulk-copy helpers
#include "cuda_check.h"

namespace {

using gptoss::cuda::bulk_copy_g2s;
using gptoss::cuda::mbar_arrive;
using gptoss::cuda::mbar_arrive_expect_tx;
using gptoss::cuda::mbar_init;
using gptoss::cuda::mbar_wait;

constexpr int kThreads = 256;
constexpr int kUnroll = 8;  // 16-byte loads in flight per thread

// Reads n16 16-byte words; `order`: 0 no PDL calls, 1 wait then read, 2 read then wait.
__global__ void __launch_bounds__(kThreads) read_kernel(const uint4* __restrict__ p, size_t n16, int order,
                                                        unsigned* sink) {
  if (order == 1) {
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
  }
  unsigned acc = 0;
  const size_t stride = size_t(gridDim.x) * kThreads;
  size_t i = size_t(blockIdx.x) * kThreads + threadIdx.x;
  for (; i + (kUnroll - 1) * stride < n16; i += kUnroll * stride) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) v[u] = __ldcs(p + i + u * stride);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n16; i += stride) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (order == 2) {
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;  // never true for the zeroed buffer; keeps the loads
}

// The persistent floor (NOTES.md v34): the whole step in one kernel of one block per SM. Each block streams its
// share of every op's bytes into a ring of shared-memory stages by the bulk-copy engine (one producer thread,
// running ahead of the consumers as far as the ring lets it: the weights of the next op are read before its
// inputs are ready), and the consumer warps fold each stage. Between ops a grid-wide barrier stands for the
// dependency (a counter per op: each block adds 1 with release semantics after its share; before the next
// op its consumers wait, by acquire loads, until all blocks have added), followed by a read of an 8 KB
// "input vector" as the real kernels read theirs after the wait.
//   waits = 0: no barriers (the ring's own streaming floor);
//   waits = 1: a barrier before each op's consumption, the producer free to run ahead;
//   waits = 2: as 1, and the producer also waits before gate_up's bytes (its experts are the router's output);
//   waits = 3: the barriers and input reads alone, no bytes (what the barriers cost).
constexpr int kPThreads = 512;  // warp 0's lane 0 produces; warps 1..15 consume
constexpr int kConsumerWarps = kPThreads / 32 - 1;

struct POp {
  unsigned long long offset16, n16;
  int after_router;
  int soft;  // dynamic_kernel, waits = 7: > 0 = its tiles wait on that many groups of the previous op's tiles
};

__device__ __forceinline__ unsigned p_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void p_spin(const unsigned* cnt, unsigned target) {
  while (p_acquire(cnt) < target) {
  }
}
__device__ __forceinline__ void p_release_add(unsigned* cnt, unsigned n) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(cnt), "r"(n) : "memory");
}
// The kernels' shared memory: 8 full and 8 empty mbarriers, 8 ints and 8 ints of stage metadata (dynamic_kernel),
// then the ring's stages. Thread 0 sets up `stages` of the barriers (then __syncthreads()).
constexpr size_t kRingHeader = 256;
struct Ring {
  uint64_t* full;
  uint64_t* empty;
  int* meta;   // per stage: the tile's length in 16-byte words, -1 at an op's end (dynamic_kernel)
  int* tmeta;  // per stage: the tile's index in its op (dynamic_kernel)
  uint4* stage0;
};
__device__ __forceinline__ Ring p_ring(unsigned char* smem, int stages) {
  Ring r{reinterpret_cast<uint64_t*>(smem), reinterpret_cast<uint64_t*>(smem) + 8, reinterpret_cast<int*>(smem + 128),
         reinterpret_cast<int*>(smem + 160), reinterpret_cast<uint4*>(smem + kRingHeader)};
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) {
      mbar_init(r.full + s, 1);
      mbar_init(r.empty + s, kConsumerWarps);
    }
  }
  __syncthreads();
  return r;
}
// The consumers' wait for counter >= target (thread ct 0 spins, then a barrier of the consumer warps), then the
// 8 KB input vector from L2, as the real kernels read theirs after their wait.
__device__ __forceinline__ void p_wait_input(const unsigned* counter, unsigned target, int ct,
                                             const uint4* __restrict__ vec, unsigned& acc) {
  if (ct == 0) p_spin(counter, target);
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumerWarps * 32) : "memory");
  for (int j = ct; j < 512; j += kConsumerWarps * 32) {
    const uint4 v = __ldcg(vec + j);
    acc ^= v.x ^ v.w;
  }
}
// The consumers' fold of n words of a stage.
__device__ __forceinline__ void p_fold(const uint4* st, int n, int ct, unsigned& acc) {
  for (int j = ct; j < n; j += kConsumerWarps * 32) {
    const uint4 v = st[j];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
}
// A barrier of the consumer warps, then thread ct 0 adds n to counter (release).
__device__ __forceinline__ void p_consumers_done(unsigned* counter, unsigned n, int ct) {
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumerWarps * 32) : "memory");
  if (ct == 0 && n) p_release_add(counter, n);
}

// Block b's share [lo, hi) of n16 words over G blocks (empty where waits = 3: the barriers alone).
__device__ __forceinline__ void p_share(unsigned long long n16, unsigned G, int waits, unsigned long long& lo,
                                        unsigned long long& hi) {
  const unsigned long long share = (n16 + G - 1) / G;
  lo = min(n16, share * blockIdx.x);
  hi = waits == 3 ? lo : min(n16, lo + share);
}

__global__ void __launch_bounds__(kPThreads, 1)
    persistent_kernel(const uint4* __restrict__ base, const POp* ops, int nops, int waits, int stages, int chunk16,
                      unsigned* cnt, const uint4* __restrict__ vec, unsigned* sink) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Ring r = p_ring(smem, stages);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const unsigned G = gridDim.x;
  if (warp == 0) {
    if (lane != 0) return;
    unsigned long long chunk = 0;
    for (int i = 0; i < nops; ++i) {
      if (waits >= 2 && ops[i].after_router && i > 0) p_spin(cnt + i - 1, G);
      unsigned long long lo, hi;
      p_share(ops[i].n16, G, waits, lo, hi);
      for (unsigned long long c = lo; c < hi; c += chunk16, ++chunk) {
        const int s = int(chunk % stages);
        if (chunk >= (unsigned long long)stages) mbar_wait(r.empty + s, uint32_t((chunk / stages) & 1) ^ 1u);
        const uint32_t bytes = uint32_t(min((unsigned long long)chunk16, hi - c) * 16);
        mbar_arrive_expect_tx(r.full + s, bytes);
        bulk_copy_g2s(r.stage0 + size_t(s) * chunk16, base + ops[i].offset16 + c, bytes, r.full + s);
      }
    }
    return;
  }
  const int ct = threadIdx.x - 32;  // consumer thread 0..479
  unsigned acc = 0;
  unsigned long long chunk = 0;
  for (int i = 0; i < nops; ++i) {
    if (waits && i > 0) p_wait_input(cnt + i - 1, G, ct, vec, acc);
    unsigned long long lo, hi;
    p_share(ops[i].n16, G, waits, lo, hi);
    for (unsigned long long c = lo; c < hi; c += chunk16, ++chunk) {
      const int s = int(chunk % stages);
      mbar_wait(r.full + s, uint32_t((chunk / stages) & 1));
      const int n = int(min((unsigned long long)chunk16, hi - c));
      p_fold(r.stage0 + size_t(s) * chunk16, n, ct, acc);
      __syncwarp();
      if (lane == 0) mbar_arrive(r.empty + s);
    }
    if (waits) p_consumers_done(cnt + i, 1, ct);
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;
}

// The same with tiles taken dynamically (waits = 4: barriers as waits = 2; waits = 5: no barriers): each op is cut
// into tiles of one stage; a block's producer takes the op's next tile by an atomic on the op's tile counter, so a
// block that streams faster takes more tiles. The producer tells the consumers which tile each stage holds, and
// marks the end of each op with an empty stage; cnt[i] counts the op's tiles consumed (the barrier's target is
// the op's tile count). waits = 6: as 4, with the producer's atomic one tile ahead. waits = 7: as 4, but an op
// whose dependency is partial (attention on qkv: a KV head's rows; down on gate_up: a slot's h) waits per tile on a
// group of the previous op's tiles (cntg: 8 counters per op, bumped once per tile after a consumer barrier;
// op.soft groups), not on all of them, and reads its 8 KB input after each new group's wait.
__global__ void __launch_bounds__(kPThreads, 1)
    dynamic_kernel(const uint4* __restrict__ base, const POp* ops, int nops, int waits, int stages, int chunk16,
                   unsigned* cnt, unsigned* tick, unsigned* cntg, const uint4* __restrict__ vec, unsigned* sink) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Ring r = p_ring(smem, stages);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto tiles = [&](int i) { return unsigned((ops[i].n16 + chunk16 - 1) / chunk16); };
  if (warp == 0) {
    if (lane != 0) return;
    unsigned long long slot = 0;
    for (int i = 0; i < nops; ++i) {
      if (waits != 5 && ops[i].after_router && i > 0) p_spin(cnt + i - 1, tiles(i - 1));
      const unsigned T = tiles(i);
      // waits = 6: the next tile's atomic is issued before the wait for a free stage (its round trip overlaps the
      // wait; the block may hold one tile it has not started). Otherwise a free stage first, then the tile.
      unsigned ahead = waits == 6 ? atomicAdd(tick + i, 1u) : 0u;
      for (;;) {
        const int s = int(slot % stages);
        if (slot >= (unsigned long long)stages) mbar_wait(r.empty + s, uint32_t((slot / stages) & 1) ^ 1u);
        ++slot;
        unsigned t;
        if (waits == 6) {
          t = ahead;
          if (t < T) ahead = atomicAdd(tick + i, 1u);
        } else {
          t = atomicAdd(tick + i, 1u);
        }
        if (t >= T) {
          r.meta[s] = -1;
          mbar_arrive(r.full + s);
          break;
        }
        const unsigned long long c = (unsigned long long)t * chunk16;
        const int n = int(min((unsigned long long)chunk16, ops[i].n16 - c));
        r.meta[s] = n;
        r.tmeta[s] = int(t);
        mbar_arrive_expect_tx(r.full + s, uint32_t(n * 16));
        bulk_copy_g2s(r.stage0 + size_t(s) * chunk16, base + ops[i].offset16 + c, uint32_t(n * 16), r.full + s);
      }
    }
    return;
  }
  const int ct = threadIdx.x - 32;
  unsigned acc = 0;
  unsigned long long slot = 0;
  // Tiles of op u in group g of G: those with t * G / T == g, i.e. [ceil(g T / G), ceil((g + 1) T / G)).
  auto group_size = [&](int u, unsigned g, unsigned G) {
    const unsigned T = tiles(u);
    return (T * (g + 1) + G - 1) / G - (T * g + G - 1) / G;
  };
  for (int i = 0; i < nops; ++i) {
    const unsigned G = waits == 7 && i > 0 ? unsigned(ops[i].soft) : 0u;              // this op's groups
    const unsigned Gn = waits == 7 && i + 1 < nops ? unsigned(ops[i + 1].soft) : 0u;  // the next op's
    int waited = -1;
    const unsigned T = tiles(i);
    if (waits != 5 && i > 0 && G == 0) p_wait_input(cnt + i - 1, tiles(i - 1), ct, vec, acc);
    unsigned done = 0;
    for (;; ++slot) {
      const int s = int(slot % stages);
      mbar_wait(r.full + s, uint32_t((slot / stages) & 1));
      const int n = r.meta[s];
      if (n > 0) {
        const unsigned t = unsigned(r.tmeta[s]);
        if (G > 0 && int(t * G / T) != waited) {  // the same for every consumer thread
          waited = int(t * G / T);
          p_wait_input(cntg + (i - 1) * 8 + waited, group_size(i - 1, unsigned(waited), G), ct, vec, acc);
        }
        p_fold(r.stage0 + size_t(s) * chunk16, n, ct, acc);
        if (Gn > 0) p_consumers_done(cntg + i * 8 + t * Gn / T, 1, ct);
        ++done;
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(r.empty + s);
      if (n < 0) {
        ++slot;
        break;
      }
    }
    if (waits != 5) p_consumers_done(cnt + i, done, ct);
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;
}

struct Op {
  size_t offset16, n16;
  int grid;
  bool after_router;  // gate_up: its reads depend on the previous kernel in every mode that has PDL
  int soft;           // v34's waits = 7: attention waits on 8 groups of qkv's tiles (KV heads), down on
                      // 4 of gate_up's (slots)
};

void launch(const Op& op, const uint4* base, int order, bool pdl, unsigned* sink, cudaStream_t s) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(op.grid);
  cfg.blockDim = dim3(kThreads);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  if (pdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  CK(cudaLaunchKernelEx(&cfg, read_kernel, base + op.offset16, op.n16, order, sink));
}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// `enqueue`'s launches on s, captured into a graph.
template <typename F>
cudaGraphExec_t capture(F&& enqueue, cudaStream_t s) {
  cudaGraph_t g;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  enqueue();
  CK(cudaStreamEndCapture(s, &g));
  CK(cudaGraphInstantiate(&exec, g, 0));
  CK(cudaGraphDestroy(g));
  return exec;
}

// The median time in us of `steps` runs of `run` on s (after one untimed run), each between two events.
template <typename F>
double median_us(F&& run, int steps, cudaStream_t s, cudaEvent_t e0, cudaEvent_t e1) {
  std::vector<float> t;
  for (int r = 0; r <= steps; ++r) {
    CK(cudaEventRecord(e0, s));
    run();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (r > 0) t.push_back(ms);
  }
  return median(t) * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 20;
  const int layers = argc > 2 ? std::atoi(argv[2]) : 24;
  const char* keep = argc > 3 ? argv[3] : "111111";
  bool keep_ok = std::strlen(keep) == 6 && keep[0] == '1';
  for (int k = 0; k < 6 && keep_ok; ++k) keep_ok = keep[k] == '0' || keep[k] == '1';
  if (steps < 1 || layers < 1 || !keep_ok) {
    std::fprintf(stderr, "usage: gptoss_cuda_stream_floor [steps >= 1] [layers >= 1] [keep: 6 of 0/1, first 1]\n");
    return 2;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  std::printf("device: %s, %d SMs, L2 %d MB\n", prop.name, sms, prop.l2CacheSize >> 20);

  // Bytes per kernel (bench/kernels/cuda/NOTES.md v26's table; attention: ~1 MB of K and V at 512 positions).
  const double MB = 1e6;
  const double layer_bytes[] = {29.49 * MB, 1.0 * MB, 23.59 * MB, 0.18 * MB, 35.25 * MB, 17.63 * MB};
  const char* layer_names[] = {"qkv", "attention", "o_proj", "router", "gate_up", "down"};
  const double tail_bytes[] = {1158.27 * MB, 0.80 * MB};
  std::vector<Op> ops;
  size_t total16 = 0;
  double step_bytes = 0;
  auto add = [&](double bytes, bool after_router, int soft) {
    const size_t n16 = size_t(bytes / 16);
    const size_t blocks = (n16 + size_t(kThreads) * kUnroll - 1) / (size_t(kThreads) * kUnroll);
    ops.push_back({total16, n16, int(std::min<size_t>(blocks, size_t(sms) * 8)), after_router, soft});
    step_bytes += double(n16) * 16;
    total16 += (n16 + 255) / 256 * 256;  // 4 KB-aligned regions
  };
  for (int l = 0; l < layers; ++l) {
    for (int k = 0; k < 6;) {
      double bytes = layer_bytes[k];
      int next = k + 1;
      for (; next < 6 && keep[next] == '0'; ++next) bytes += layer_bytes[next];
      add(bytes, k == 4, k == 1 ? 8 : k == 5 ? 4 : 0);  // a kernel that starts with gate_up reads the router's experts
      k = next;
    }
  }
  for (double b : tail_bytes) add(b, false, 0);
  std::printf("kernels per step: %zu (%d layers, kept %s, + 2); bytes per step %.3f GB\n", ops.size(), layers, keep,
              step_bytes / 1e9);

  uint4* buf = nullptr;
  unsigned* sink = nullptr;
  CK(cudaMalloc(&buf, total16 * 16));
  CK(cudaMemset(buf, 0, total16 * 16));
  CK(cudaMalloc(&sink, 4));

  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));

  // Copy bandwidth: 2 GiB D2D, median of 10, bytes read + written (the lab's copy_bandwidth()).
  double copy_bw = 0;
  {
    const size_t cb = size_t(2) << 30;
    void *src = nullptr, *dst = nullptr;
    CK(cudaMalloc(&src, cb));
    CK(cudaMalloc(&dst, cb));
    CK(cudaMemset(src, 1, cb));
    const double us =
        median_us([&] { CK(cudaMemcpyAsync(dst, src, cb, cudaMemcpyDeviceToDevice, s)); }, 10, s, e0, e1);
    copy_bw = 2.0 * cb / (us * 1e-6);
    CK(cudaFree(src));
    CK(cudaFree(dst));
  }
  const double roofline = copy_bw / step_bytes;
  std::printf("copy bandwidth (D2D 2048 MiB, read+write): %.1f GB/s; roofline %.1f steps/s\n", copy_bw / 1e9,
              roofline);

  // One kernel alone per size (stream launches, median of 20): its own rate against the copy.
  std::printf("\n%-24s %10s %10s %10s %8s\n", "kernel", "MB", "grid", "us", "%copy");
  const size_t per_layer = (ops.size() - 2) / size_t(layers);
  for (size_t k = 0; k < per_layer + 2; ++k) {
    const Op& op = ops[k < per_layer ? k : size_t(layers) * per_layer + (k - per_layer)];
    std::string name;
    if (k < per_layer) {
      for (size_t j = 0, n = 0; j < 6; ++j) {
        if (keep[j] == '1') ++n;
        if (n == k + 1) name += std::string(name.empty() ? "" : "+") + layer_names[j];
      }
    } else {
      name = k == per_layer ? "unembedding" : "logits";
    }
    const double us = median_us([&] { launch(op, buf, 0, false, sink, s); }, 20, s, e0, e1);
    std::printf("%-24s %10.2f %10d %10.2f %7.1f%%\n", name.c_str(),
                op.n16 * 16 / MB, op.grid, us, 100.0 * (op.n16 * 16 / (us * 1e-6)) / copy_bw);
  }

  struct Mode {
    const char* name;
    bool graph, pdl;
    int order;
    bool deps;
  } modes[] = {{"stream", false, false, 0, false},
               {"graph", true, false, 0, false},
               {"graph+pdl (read after wait)", true, true, 1, false},
               {"graph+early (read before wait)", true, true, 2, false},
               {"graph+deps (gate_up after wait)", true, true, 2, true}};
  std::printf("\n%-32s %10s %10s %10s\n", "mode", "us/step", "steps/s", "%roofline");
  for (int round = 0; round < 2; ++round) {
    for (const Mode& m : modes) {
      auto step = [&] {
        for (const Op& op : ops) launch(op, buf, m.deps && op.after_router ? 1 : m.order, m.pdl, sink, s);
      };
      const cudaGraphExec_t exec = m.graph ? capture(step, s) : nullptr;
      const double us = median_us(
          [&] {
            if (exec) {
              CK(cudaGraphLaunch(exec, s));
            } else {
              step();
            }
          },
          steps, s, e0, e1);
      if (exec) CK(cudaGraphExecDestroy(exec));
      std::printf("%-32s %10.1f %10.1f %9.1f%%\n", m.name, us, 1e6 / us, 100.0 * (1e6 / us) / roofline);
    }
  }

  // The persistent floor (v34): one launch per step (counters zeroed by a memset node before it), graph-captured.
  {
    std::vector<POp> pops;
    for (const Op& op : ops) pops.push_back({op.offset16, op.n16, op.after_router ? 1 : 0, op.soft});
    POp* d_ops = nullptr;
    unsigned* cnt = nullptr;
    uint4* vec = nullptr;
    CK(cudaMalloc(&d_ops, pops.size() * sizeof(POp)));
    CK(cudaMemcpy(d_ops, pops.data(), pops.size() * sizeof(POp), cudaMemcpyHostToDevice));
    CK(cudaMalloc(&cnt, 10 * pops.size() * sizeof(unsigned)));  // cnt, the tile counters, 8 group counters per op
    CK(cudaMalloc(&vec, 8192));
    CK(cudaMemset(vec, 0, 8192));
    struct PMode {
      int waits, stages, chunk_kb;
    } pmodes[] = {{0, 6, 32}, {1, 6, 32}, {2, 6, 32}, {2, 2, 32}, {2, 6, 16}, {2, 8, 8},  {3, 6, 16}, {5, 6, 16},
                  {5, 6, 32}, {4, 6, 16}, {4, 6, 32}, {4, 4, 48}, {4, 3, 64}, {4, 8, 8},  {6, 6, 16}, {6, 6, 32},
                  {7, 6, 32}, {7, 4, 48}};
    std::printf("\n%-44s %10s %10s %10s\n", "persistent (1 block/SM, ring)", "us/step", "steps/s", "%roofline");
    for (int round = 0; round < 2; ++round) {
      for (const PMode& m : pmodes) {
        if (m.stages > 8) {  // the kernels keep 8 full and 8 empty mbarriers (kRingHeader)
          std::fprintf(stderr, "persistent modes: at most 8 stages\n");
          return 2;
        }
        const int chunk16 = m.chunk_kb * 1024 / 16;
        const size_t smem = kRingHeader + size_t(m.stages) * chunk16 * 16;
        CK(cudaFuncSetAttribute(persistent_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        CK(cudaFuncSetAttribute(dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
        const cudaGraphExec_t exec = capture(
            [&] {
              CK(cudaMemsetAsync(cnt, 0, 10 * pops.size() * sizeof(unsigned), s));
              if (m.waits >= 4) {
                dynamic_kernel<<<sms, kPThreads, smem, s>>>(buf, d_ops, int(pops.size()), m.waits, m.stages,
                                                                  chunk16, cnt, cnt + pops.size(),
                                                                  cnt + 2 * pops.size(), vec, sink);
              } else {
                persistent_kernel<<<sms, kPThreads, smem, s>>>(buf, d_ops, int(pops.size()), m.waits, m.stages,
                                                               chunk16, cnt, vec, sink);
              }
            },
            s);
        const double us = median_us([&] { CK(cudaGraphLaunch(exec, s)); }, steps, s, e0, e1);
        CK(cudaGraphExecDestroy(exec));
        char name[64];
        std::snprintf(name, sizeof name, "%s waits %d, %d stages x %d KB", m.waits >= 4 ? "dynamic" : "static", m.waits,
                      m.stages, m.chunk_kb);
        std::printf("%-44s %10.1f %10.1f %9.1f%%\n", name, us, 1e6 / us, 100.0 * (1e6 / us) / roofline);
      }
    }
    CK(cudaFree(d_ops));
    CK(cudaFree(cnt));
    CK(cudaFree(vec));
  }
  CK(cudaGetLastError());
  return 0;
}
