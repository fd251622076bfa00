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
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.h"

namespace {

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

struct Op {
  size_t offset16, n16;
  int grid;
  bool after_router;  // gate_up: its reads depend on the previous kernel in every mode that has PDL
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
  auto add = [&](double bytes, bool after_router) {
    const size_t n16 = size_t(bytes / 16);
    const size_t blocks = (n16 + size_t(kThreads) * kUnroll - 1) / (size_t(kThreads) * kUnroll);
    ops.push_back({total16, n16, int(std::min<size_t>(blocks, size_t(sms) * 8)), after_router});
    step_bytes += double(n16) * 16;
    total16 += (n16 + 255) / 256 * 256;  // 4 KB-aligned regions
  };
  for (int l = 0; l < layers; ++l) {
    for (int k = 0; k < 6;) {
      double bytes = layer_bytes[k];
      int next = k + 1;
      for (; next < 6 && keep[next] == '0'; ++next) bytes += layer_bytes[next];
      add(bytes, k == 4);  // a kernel that starts with gate_up reads the router's experts
      k = next;
    }
  }
  for (double b : tail_bytes) add(b, false);
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
    std::vector<float> t;
    for (int r = 0; r < 11; ++r) {
      CK(cudaEventRecord(e0, s));
      CK(cudaMemcpyAsync(dst, src, cb, cudaMemcpyDeviceToDevice, s));
      CK(cudaEventRecord(e1, s));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      if (r > 0) t.push_back(ms);
    }
    copy_bw = 2.0 * cb / (median(t) * 1e-3);
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
    std::vector<float> t;
    for (int r = 0; r < 21; ++r) {
      CK(cudaEventRecord(e0, s));
      launch(op, buf, 0, false, sink, s);
      CK(cudaEventRecord(e1, s));
      CK(cudaEventSynchronize(e1));
      float ms = 0;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      if (r > 0) t.push_back(ms);
    }
    const float us = median(t) * 1e3f;
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
      cudaGraphExec_t exec = nullptr;
      if (m.graph) {
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        step();
        CK(cudaStreamEndCapture(s, &g));
        CK(cudaGraphInstantiate(&exec, g, 0));
        CK(cudaGraphDestroy(g));
      }
      std::vector<float> t;
      for (int r = 0; r <= steps; ++r) {
        CK(cudaEventRecord(e0, s));
        if (exec) {
          CK(cudaGraphLaunch(exec, s));
        } else {
          step();
        }
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (r > 0) t.push_back(ms);
      }
      if (exec) CK(cudaGraphExecDestroy(exec));
      const double us = median(t) * 1e3;
      std::printf("%-32s %10.1f %10.1f %9.1f%%\n", m.name, us, 1e6 / us, 100.0 * (1e6 / us) / roofline);
    }
  }
  CK(cudaGetLastError());
  return 0;
}
