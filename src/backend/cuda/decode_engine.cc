#include "backend/cuda/decode_engine.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "backend/cuda/elementwise.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/moe_gemm.h"
#include "backend/cuda/prefill.h"
#include "model/rope.h"

namespace gptoss::cuda {
namespace {

Status cuda_status(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  return Error("cuda decode: {}: {}", what, cudaGetErrorString(e));
}

#define GPTOSS_CUDA_TRY(expr, what) GPTOSS_RETURN_IF_ERROR(cuda_status(static_cast<cudaError_t>(expr), what))

const uint16_t* bf(const Weight& w) { return w.buf.as<uint16_t>(); }

}  // namespace

struct DecodeEngine::Impl {
  ModelConfig c;
  const ModelWeights* w = nullptr;
  DecodeOptions opt;
  cudaStream_t stream = nullptr;
  std::vector<void*> allocations;
  float *x = nullptr, *q = nullptr, *part = nullptr, *attn = nullptr, *rw = nullptr, *logits = nullptr;
  float *inv_freq = nullptr, *xn_inv = nullptr, *router_logits = nullptr, *router_partial = nullptr;
  int32_t* router_counters = nullptr;
  float* down_y = nullptr;
  uint32_t *xn16 = nullptr, *h16 = nullptr;
  // Grouped MoE GEMM path (batches >= opt.moe_gemm_min_batch): slots sorted by expert (one grouping for
  // gate_up and down), their tiles, h as f32 and its x16 scales.
  int32_t *sorted_up = nullptr, *tiles_up = nullptr;
  float *h = nullptr, *h_inv = nullptr;
  // Dense GEMM path (batches >= opt.dense_gemm_min_batch): fp16 copies of the matrices (f16_rows) with
  // their row scales, the normalized input, its x16 form, k and v rows, split-K partial sums.
  struct F16 {
    uint16_t* w = nullptr;
    float* inv = nullptr;
  };
  std::vector<F16> q16, k16, v16, o16;
  F16 unemb16;
  float *xn = nullptr, *dinv = nullptr, *kbuf = nullptr, *vbuf = nullptr, *dws = nullptr;
  uint32_t* dx16 = nullptr;
  int32_t *idx = nullptr, *next = nullptr, *tok = nullptr, *pos = nullptr, *slot = nullptr, *counters = nullptr;
  // A step's inputs: tokens, positions and slots of n tokens side by side ([0, n), [n, 2n), [2n, 3n)) in
  // pinned io_h and on the device in io (tok / pos / slot point into it); next_h: the greedy tokens.
  int32_t *io = nullptr, *io_h = nullptr, *next_h = nullptr, *next_mapped = nullptr;
  uint64_t* argmax_part = nullptr;  // the split argmax's per-block maxima (argmax_scratch)
  uint32_t* argmax_counters = nullptr;
  int step_io = 0;  // DecodeOptions::step_io (GPTOSS_CUDA_STEP_IO)
  float* logits_h = nullptr;  // pinned [max_batch, vocab], allocated by the first step_rows that copies a row
  std::vector<float*> k_cache, v_cache;
  std::vector<int> capacity;  // per layer
  std::vector<KvPages> pages;  // per layer (contiguous unless the external KV is paged)
  float concentration = 1.0f;
  std::map<int, cudaGraphExec_t> graphs;

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    for (auto& [n, g] : graphs) cudaGraphExecDestroy(g);
    for (void* p : allocations) cudaFree(p);
    cudaFreeHost(io_h);
    cudaFreeHost(next_h);
    cudaFreeHost(logits_h);
    if (stream) cudaStreamDestroy(stream);
  }

  template <typename T>
  Status dev(T** p, size_t count) {
    void* q = nullptr;
    GPTOSS_CUDA_TRY(cudaMalloc(&q, std::max<size_t>(count * sizeof(T), 16)), "cudaMalloc");
    allocations.push_back(q);
    *p = static_cast<T*>(q);
    return Status::ok();
  }

  Status enqueue(int n) {
    const int H = c.hidden_size, Nq = c.num_heads, Nkv = c.num_kv_heads, K = c.experts_per_token;
    const int I = c.intermediate_size, E = c.num_experts, V = c.vocab_size;
    tok = io, pos = io + n, slot = io + 2 * n;
    if (step_io & kStepIoOneCopy) {
      GPTOSS_CUDA_TRY(cudaMemcpyAsync(io, io_h, 3 * n * 4, cudaMemcpyHostToDevice, stream), "step inputs");
    } else {
      for (int i = 0; i < 3; ++i) {
        GPTOSS_CUDA_TRY(cudaMemcpyAsync(io + i * n, io_h + i * n, n * 4, cudaMemcpyHostToDevice, stream), "step inputs");
      }
    }
    GPTOSS_CUDA_TRY(embed_bf16(bf(w->embedding), H, tok, n, x, stream), "embed");
    for (int l = 0; l < c.num_layers; ++l) {
      const LayerWeights& L = w->layers[l];
      GemvInput xin;
      xin.x = x;
      xin.x_stride = H;
      xin.norm_gain = bf(L.attn_norm);
      xin.norm_eps = c.rms_norm_eps;
      const bool dense = n >= opt.dense_gemm_min_batch;
      if (dense) {
        GPTOSS_RETURN_IF_ERROR(dense_qkv(L, l, n));
      } else {
        QkvRopeArgs a{bf(L.q), bf(L.k), bf(L.v), bf(L.q_bias), bf(L.k_bias), bf(L.v_bias), Nq, Nkv, H, inv_freq,
                      concentration, pos, slot, q, k_cache[l], v_cache[l], capacity[l], pages[l]};
        GPTOSS_CUDA_TRY(qkv_rope_store(a, xin, n, stream), "qkv");
      }
      GPTOSS_CUDA_TRY(attention(q, n, Nq, Nkv, k_cache[l], v_cache[l], capacity[l], pos, slot,
                                L.sliding ? c.sliding_window : 0, 1.0f / std::sqrt(float(c.head_dim)), bf(L.sinks),
                                L.sliding || n > 1 ? opt.nsplit_sliding : opt.nsplit, part, counters, attn, stream,
                                /*kv_ready=*/true, pages[l]),
                      "attention");
      GemvInput ain;
      ain.x = attn;
      ain.x_stride = Nq * 64;
      if (dense) {
        GPTOSS_CUDA_TRY(stage_x16(attn, Nq * 64, n, Nq * 64, dx16, dinv, stream), "o_proj stage");
        // The residual added by the split sum.
        GPTOSS_CUDA_TRY(dense_gemm_x16(dx16, dinv, n, o16[l].w, o16[l].inv, bf(L.o_bias), H, Nq * 64, x, dws, stream,
                                       /*add_to_out=*/true),
                        "o_proj gemm");
      } else if (n == 1 && router_variant() == 3) {
        // o_proj with the router folded in (its last block selects the experts and writes xn16).
        RouterFold rf;
        rf.gain = bf(L.mlp_norm), rf.eps = c.rms_norm_eps, rf.wr = bf(L.router), rf.br = bf(L.router_bias);
        rf.experts = E, rf.k = K, rf.partial = router_partial, rf.counter = router_counters;
        rf.xn16 = xn16, rf.xn_inv = xn_inv, rf.logits = router_logits, rf.idx = idx, rf.weight = rw;
        GPTOSS_CUDA_TRY(gemv_bf16_router(bf(L.o), bf(L.o_bias), H, Nq * 64, ain, x, rf, stream), "o_proj+router");
      } else {
        GPTOSS_CUDA_TRY(gemv_bf16(bf(L.o), bf(L.o_bias), H, Nq * 64, ain, n, x, H, true, stream), "o_proj");
      }
      if (dense || n != 1 || router_variant() != 3) {
        GPTOSS_CUDA_TRY(router_topk(x, H, bf(L.mlp_norm), c.rms_norm_eps, bf(L.router), bf(L.router_bias), E, H, K, n,
                                    nullptr, xn16, xn_inv, router_logits, router_counters, idx, rw, stream),
                        "router");
      }
      if (n >= opt.moe_gemm_min_batch) {
        GPTOSS_RETURN_IF_ERROR(grouped_moe(L, n));
        continue;
      }
      GPTOSS_CUDA_TRY(moe_gate_up_swiglu(xn16, xn_inv, idx, n, K, L.mlp1.blocks.as<uint8_t>(),
                                         L.mlp1.scales.as<uint8_t>(), bf(L.mlp1_bias), 2 * I, H, c.swiglu_limit,
                                         c.swiglu_alpha, nullptr, h16, stream),
                      "moe gate_up");
      GPTOSS_CUDA_TRY(moe_down_accumulate(h16, nullptr, idx, rw, n, K, L.mlp2.blocks.as<uint8_t>(),
                                          L.mlp2.scales.as<uint8_t>(), bf(L.mlp2_bias), H, I, x, true, stream,
                                          /*idx_ready=*/true),
                      "moe down");
    }
    GemvInput fin;
    fin.x = x;
    fin.x_stride = H;
    fin.norm_gain = bf(w->final_norm);
    fin.norm_eps = c.rms_norm_eps;
    if (n >= opt.dense_gemm_min_batch) {
      GPTOSS_CUDA_TRY(rmsnorm(x, n, H, bf(w->final_norm), c.rms_norm_eps, xn, stream), "final norm");
      GPTOSS_CUDA_TRY(stage_x16(xn, H, n, H, dx16, dinv, stream), "unembedding stage");
      GPTOSS_CUDA_TRY(dense_gemm_x16(dx16, dinv, n, unemb16.w, unemb16.inv, nullptr, V, H, logits, nullptr, stream),
                      "unembedding gemm");
    } else {
      GPTOSS_CUDA_TRY(gemv_bf16(bf(w->unembedding), nullptr, V, H, fin, n, logits, V, false, stream), "unembedding");
    }
    const bool split = (step_io & kStepIoSplitArgmax) != 0;
    if (step_io & kStepIoMappedNext) {  // the argmax kernel writes the pinned host buffer itself
      GPTOSS_CUDA_TRY(argmax_rows(logits, V, n, next_mapped, stream, split ? argmax_part : nullptr, argmax_counters),
                      "argmax");
    } else {
      GPTOSS_CUDA_TRY(argmax_rows(logits, V, n, next, stream, split ? argmax_part : nullptr, argmax_counters), "argmax");
      GPTOSS_CUDA_TRY(cudaMemcpyAsync(next_h, next, n * 4, cudaMemcpyDeviceToHost, stream), "next tokens");
    }
    return Status::ok();
  }

  // q/k/v of n tokens through the dense GEMM: RMSNorm, x16 staging, three GEMMs (+ bias), RoPE on q
  // and k, then k and v into the cache (the op path's kernels: elementwise.h).
  Status dense_qkv(const LayerWeights& L, int l, int n) {
    const int H = c.hidden_size, Q = c.num_heads * 64, KV = c.num_kv_heads * 64;
    GPTOSS_CUDA_TRY(rmsnorm(x, n, H, bf(L.attn_norm), c.rms_norm_eps, xn, stream), "attn norm");
    GPTOSS_CUDA_TRY(stage_x16(xn, H, n, H, dx16, dinv, stream), "qkv stage");
    GPTOSS_CUDA_TRY(dense_gemm_x16(dx16, dinv, n, q16[l].w, q16[l].inv, bf(L.q_bias), Q, H, q, dws, stream), "q gemm");
    GPTOSS_CUDA_TRY(dense_gemm_x16(dx16, dinv, n, k16[l].w, k16[l].inv, bf(L.k_bias), KV, H, kbuf, dws, stream),
                    "k gemm");
    GPTOSS_CUDA_TRY(dense_gemm_x16(dx16, dinv, n, v16[l].w, v16[l].inv, bf(L.v_bias), KV, H, vbuf, dws, stream),
                    "v gemm");
    GPTOSS_CUDA_TRY(rope_qk_store(q, c.num_heads, kbuf, vbuf, c.num_kv_heads, 64, n, pos, inv_freq, concentration,
                                  k_cache[l], v_cache[l], capacity[l], slot, stream, pages[l]),
                    "rope + kv store");
    return Status::ok();
  }

  Status make_f16(const Weight& w, F16* out) {
    GPTOSS_RETURN_IF_ERROR(dev(&out->w, size_t(w.rows) * w.cols));
    GPTOSS_RETURN_IF_ERROR(dev(&out->inv, size_t(w.rows)));
    GPTOSS_CUDA_TRY(f16_rows(bf(w), static_cast<int>(w.rows), static_cast<int>(w.cols), out->w, out->inv, stream),
                    "fp16 copy");
    return Status::ok();
  }

  // The MoE layer of n tokens through the grouped GEMM in tiles of 8 or 16 slots (the prefill path's
  // kernels; no host sync, so graph-capturable): gate_up + bias + SwiGLU into h [S, I], h staged in
  // x16 form, down + bias into down_y [S, H], the k slots of each token summed in expert-id order
  // (moe_combine, the CPU exact path's order) and added to the residual x.
  Status grouped_moe(const LayerWeights& L, int n) {
    const int H = c.hidden_size, I = c.intermediate_size, E = c.num_experts, K = c.experts_per_token, S = n * K;
    const int tile = opt.moe_gemm_tile_slots > 0 ? opt.moe_gemm_tile_slots : S <= 4 * E ? 8 : 16;
    const int max_tiles = moe_gemm_max_tiles(S, E, tile);
    // One grouping serves both GEMMs: gate_up reads x16 row s / K of slot s (sorted_up) and down reads h row s, so
    // down's source and destination lists are both sorted_up's second half (the slots), over the same tiles.
    GPTOSS_CUDA_TRY(moe_group_slots(idx, S, K, E, true, sorted_up, tiles_up, stream, tile), "moe group");
    GPTOSS_CUDA_TRY(moe_gemm_mxfp4(xn16, xn_inv, sorted_up, sorted_up + S, tiles_up, max_tiles,
                                   L.mlp1.blocks.as<uint8_t>(), L.mlp1.scales.as<uint8_t>(), bf(L.mlp1_bias), 2 * I, H,
                                   true, c.swiglu_limit, c.swiglu_alpha, h, stream, tile),
                    "moe gemm gate_up");
    GPTOSS_CUDA_TRY(stage_x16(h, I, S, I, h16, h_inv, stream), "moe stage h");
    GPTOSS_CUDA_TRY(moe_gemm_mxfp4(h16, h_inv, sorted_up + S, sorted_up + S, tiles_up, max_tiles,
                                   L.mlp2.blocks.as<uint8_t>(), L.mlp2.scales.as<uint8_t>(), bf(L.mlp2_bias), H, I,
                                   false, 0.0f, 0.0f, down_y, stream, tile),
                    "moe gemm down");
    GPTOSS_CUDA_TRY(moe_combine(down_y, idx, rw, n, K, H, x, stream, /*add_to_out=*/true), "moe combine + residual");
    return Status::ok();
  }

  Status launch(int n, bool use_graph) {
    if (n < 1 || n > opt.max_batch) return Error("cuda decode: batch {} outside 1..{}", n, opt.max_batch);
    if (!use_graph) return enqueue(n);
    auto it = graphs.find(n);
    if (it == graphs.end()) {
      GPTOSS_CUDA_TRY(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
      const Status st = enqueue(n);
      cudaGraph_t graph = nullptr;
      const cudaError_t end = cudaStreamEndCapture(stream, &graph);
      GPTOSS_RETURN_IF_ERROR(st);
      GPTOSS_CUDA_TRY(end, "end capture");
      cudaGraphExec_t exec = nullptr;
      const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      GPTOSS_CUDA_TRY(inst, "graph instantiate");
      it = graphs.emplace(n, exec).first;
    }
    GPTOSS_CUDA_TRY(cudaGraphLaunch(it->second, stream), "graph launch");
    return Status::ok();
  }
};

DecodeEngine::DecodeEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DecodeEngine::~DecodeEngine() = default;

Expected<std::unique_ptr<DecodeEngine>> DecodeEngine::create(const ModelConfig& config, const ModelWeights& weights,
                                                             const DecodeOptions& options) {
  auto m = std::make_unique<Impl>();
  m->c = config;
  m->w = &weights;
  m->opt = options;
  const ModelConfig& c = config;
  if (c.head_dim != 64) return Error("cuda decode: head_dim {} (the kernels need 64)", c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0 || c.num_heads / c.num_kv_heads > 32) {
    return Error("cuda decode: {} heads over {} kv heads is not supported", c.num_heads, c.num_kv_heads);
  }
  if (c.hidden_size % 32 != 0 || c.intermediate_size % 32 != 0) {
    return Error("cuda decode: hidden {} and intermediate {} must be multiples of 32", c.hidden_size,
                 c.intermediate_size);
  }
  if (c.num_experts > 256 || c.experts_per_token > 8) {
    return Error("cuda decode: {} experts, top-{}: at most 256 and 8", c.num_experts, c.experts_per_token);
  }
  auto dense_ok = [](const Weight& w) { return w.type == ElemType::kBF16; };
  if (!dense_ok(weights.embedding) || !dense_ok(weights.unembedding) || !dense_ok(weights.final_norm)) {
    return Error("cuda decode: dense weights must be bf16");
  }
  for (const auto& L : weights.layers) {
    if (!dense_ok(L.q) || !dense_ok(L.o) || !dense_ok(L.router) || !dense_ok(L.mlp1_bias) || !dense_ok(L.sinks)) {
      return Error("cuda decode: dense weights must be bf16");
    }
  }
  if (options.max_batch < 1 || options.max_context < 1) return Error("cuda decode: max_batch and max_context must be >= 1");
  // Full-attention layers at batch 1: up to 32 splits of >= 20 positions (v12: at positions 512..639 one
  // tile per block, +1.9% decode on an H100); sliding-window layers and batches (which have blocks enough)
  // as before (bench/kernels/cuda/NOTES.md v12).
  if (m->opt.nsplit <= 0) m->opt.nsplit = std::clamp(options.max_context / 20, 1, 32);
  if (m->opt.nsplit_sliding <= 0) m->opt.nsplit_sliding = std::clamp(options.max_context / 64, 1, 16);
  if (m->opt.nsplit > 32 || m->opt.nsplit_sliding > 32) return Error("cuda decode: at most 32 attention splits");
  if (m->opt.moe_gemm_min_batch <= 0) {
    m->opt.moe_gemm_min_batch = kDecodeMoeGemmMinBatch;
    if (const char* v = std::getenv("GPTOSS_CUDA_DECODE_MOE_GEMM_MIN"); v != nullptr && std::atoi(v) > 0) {
      m->opt.moe_gemm_min_batch = std::atoi(v);
    }
  }
  if (m->opt.dense_gemm_min_batch <= 0) {
    m->opt.dense_gemm_min_batch = kDecodeDenseGemmMinBatch;
    if (const char* v = std::getenv("GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN"); v != nullptr && std::atoi(v) > 0) {
      m->opt.dense_gemm_min_batch = std::atoi(v);
    }
  }
  if (m->opt.moe_gemm_tile_slots <= 0) {
    if (const char* v = std::getenv("GPTOSS_CUDA_DECODE_MOE_TILE"); v != nullptr) m->opt.moe_gemm_tile_slots = std::atoi(v);
  }
  if (const int t = m->opt.moe_gemm_tile_slots; t != 0 && t != 8 && t != 16 && t != kMoeGemmTileSlots) {
    return Error("cuda decode: MoE GEMM tiles of {} slots (8, 16 or {})", t, kMoeGemmTileSlots);
  }

  const int B = options.max_batch, H = c.hidden_size, Nq = c.num_heads;
  GPTOSS_CUDA_TRY(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking), "stream");
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->x, size_t(B) * H));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->xn16, x16_bytes(B, H) / 4));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->xn_inv, B));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->router_logits, size_t(B) * c.num_experts));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->router_partial, router_fold_partials(H, c.num_experts)));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->router_counters, B));
  GPTOSS_CUDA_TRY(cudaMemset(m->router_counters, 0, size_t(B) * 4), "counters");
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->down_y, size_t(B) * c.experts_per_token * H));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->q, size_t(B) * Nq * 64));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->attn, size_t(B) * Nq * 64));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->part, size_t(B) * Nq * std::max(m->opt.nsplit, m->opt.nsplit_sliding) * 66));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->counters, size_t(B) * c.num_kv_heads));
  GPTOSS_CUDA_TRY(cudaMemset(m->counters, 0, size_t(B) * c.num_kv_heads * 4), "counters");
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->idx, size_t(B) * c.experts_per_token));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->rw, size_t(B) * c.experts_per_token));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->h16, x16_bytes(B * c.experts_per_token, c.intermediate_size) / 4));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->logits, size_t(B) * c.vocab_size));
  if (B >= m->opt.moe_gemm_min_batch) {
    // Tiles of 8 slots (the smallest) need the most tile entries.
    const int S = B * c.experts_per_token, tiles = 3 * moe_gemm_max_tiles(S, c.num_experts, 8) + 1;
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->sorted_up, size_t(2) * S));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->tiles_up, size_t(tiles)));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->h, size_t(S) * c.intermediate_size));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->h_inv, size_t(S)));
  }
  if (B >= m->opt.dense_gemm_min_batch) {
    const int Q = Nq * 64, KV = c.num_kv_heads * 64;
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->xn, size_t(B) * std::max(H, Q)));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->dx16, x16_bytes(B, std::max(H, Q)) / 4));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->dinv, size_t(B)));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->kbuf, size_t(B) * KV));
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->vbuf, size_t(B) * KV));
    size_t ws = 0;  // split-K partial sums of the largest q/k/v grid that splits, and of o (always through ws)
    for (int b = 1; b <= B; ++b) {
      for (const auto& [rows, cols] : {std::pair{Q, H}, std::pair{KV, H}, std::pair{H, Q}}) {
        const int sp = dense_gemm_splits(b, rows, cols);
        if (sp > 1 || (rows == H && cols == Q)) ws = std::max(ws, size_t(sp) * b * rows);
      }
    }
    GPTOSS_RETURN_IF_ERROR(m->dev(&m->dws, std::max<size_t>(ws, 1)));
    for (const auto& L : weights.layers) {
      Impl::F16 q, k, v, o;
      GPTOSS_RETURN_IF_ERROR(m->make_f16(L.q, &q));
      GPTOSS_RETURN_IF_ERROR(m->make_f16(L.k, &k));
      GPTOSS_RETURN_IF_ERROR(m->make_f16(L.v, &v));
      GPTOSS_RETURN_IF_ERROR(m->make_f16(L.o, &o));
      m->q16.push_back(q), m->k16.push_back(k), m->v16.push_back(v), m->o16.push_back(o);
    }
    GPTOSS_RETURN_IF_ERROR(m->make_f16(weights.unembedding, &m->unemb16));
    GPTOSS_CUDA_TRY(cudaStreamSynchronize(m->stream), "fp16 copies");
  }
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->next, B));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->io, 3 * size_t(B)));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->argmax_part, argmax_scratch(c.vocab_size, B)));
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->argmax_counters, B));
  GPTOSS_CUDA_TRY(cudaMemset(m->argmax_counters, 0, size_t(B) * 4), "counters");
  GPTOSS_RETURN_IF_ERROR(m->dev(&m->inv_freq, 32));
  const YarnRope rope = yarn_rope(c);
  std::vector<float> inv(rope.inv_freq.begin(), rope.inv_freq.end());
  m->concentration = static_cast<float>(rope.concentration);
  GPTOSS_CUDA_TRY(cudaMemcpy(m->inv_freq, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice), "inv_freq");
  GPTOSS_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&m->io_h), 3 * size_t(B) * 4), "pinned buffer");
  std::memset(m->io_h, 0, 3 * size_t(B) * 4);
  GPTOSS_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&m->next_h), size_t(B) * 4), "pinned buffer");
  std::memset(m->next_h, 0, size_t(B) * 4);
  GPTOSS_CUDA_TRY(cudaHostGetDevicePointer(reinterpret_cast<void**>(&m->next_mapped), m->next_h, 0), "mapped next");
  m->step_io = options.step_io;
  if (const char* v = std::getenv("GPTOSS_CUDA_STEP_IO"); v != nullptr) m->step_io = std::atoi(v);
  const size_t L = c.num_layers;
  m->pages.assign(L, KvPages{});
  if (!options.kv_pages.empty()) {
    if (options.kv_pages.size() != L || options.k_layers.size() != L) {
      return Error("cuda decode: paged KV needs {} layers of pages and external keys/values", L);
    }
    for (size_t l = 0; l < L; ++l) {
      const KvPages& p = options.kv_pages[l];
      if (p.page_size < 0 || (p.page_size > 0 && (p.table == nullptr || p.per_slot * p.page_size < options.max_context))) {
        return Error("cuda decode: external KV layer {}: a page table of {} pages of {} does not cover context {}", l,
                     p.per_slot, p.page_size, options.max_context);
      }
    }
    m->pages = options.kv_pages;
  }
  if (!options.k_layers.empty() || !options.v_layers.empty() || !options.capacities.empty()) {
    if (options.k_layers.size() != L || options.v_layers.size() != L || options.capacities.size() != L) {
      return Error("cuda decode: external KV needs {} layers of keys, values and capacities", L);
    }
    for (size_t l = 0; l < L; ++l) {
      const bool sliding = l < c.layer_is_sliding.size() && c.layer_is_sliding[l] && c.sliding_window > 0;
      const int cap = options.capacities[l];
      if (options.k_layers[l] == nullptr || options.v_layers[l] == nullptr || cap < 1 || cap > options.max_context ||
          (sliding ? cap < std::min(c.sliding_window, options.max_context) : cap != options.max_context)) {
        return Error("cuda decode: external KV layer {}: capacity {} does not fit context {} / window {}", l, cap,
                     options.max_context, c.sliding_window);
      }
    }
    m->k_cache = options.k_layers;
    m->v_cache = options.v_layers;
    m->capacity = options.capacities;
    return std::unique_ptr<DecodeEngine>(new DecodeEngine(std::move(m)));
  }
  const size_t kv = size_t(B) * options.max_context * c.num_kv_heads * 64;
  m->capacity.assign(L, options.max_context);
  for (size_t l = 0; l < L; ++l) {
    float *k = nullptr, *v = nullptr;
    GPTOSS_RETURN_IF_ERROR(m->dev(&k, kv));
    GPTOSS_RETURN_IF_ERROR(m->dev(&v, kv));
    m->k_cache.push_back(k);
    m->v_cache.push_back(v);
  }
  return std::unique_ptr<DecodeEngine>(new DecodeEngine(std::move(m)));
}

void DecodeEngine::set_inputs(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                              std::span<const int32_t> slots) {
  const size_t n = tokens.size();
  std::copy(tokens.begin(), tokens.end(), impl_->io_h);
  std::copy(positions.begin(), positions.end(), impl_->io_h + n);
  std::copy(slots.begin(), slots.end(), impl_->io_h + 2 * n);
}

Status DecodeEngine::launch(int n, bool use_graph) { return impl_->launch(n, use_graph); }

Status DecodeEngine::sync() { return cuda_status(cudaStreamSynchronize(impl_->stream), "sync"); }

const int32_t* DecodeEngine::next_tokens_host() const { return impl_->next_h; }

Status DecodeEngine::step_rows(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                               std::span<const int32_t> slots, std::span<const uint8_t> want_rows,
                               const float** rows, int32_t* next, bool use_graph) {
  const int n = static_cast<int>(tokens.size());
  if (want_rows.size() != tokens.size()) return Error("cuda decode: {} row flags for {} tokens", want_rows.size(), n);
  GPTOSS_RETURN_IF_ERROR(step(tokens, positions, slots, nullptr, nullptr, use_graph, /*sync_at_end=*/false));
  const size_t V = impl_->c.vocab_size;
  if (impl_->logits_h == nullptr && std::find(want_rows.begin(), want_rows.end(), 1) != want_rows.end()) {
    GPTOSS_CUDA_TRY(cudaMallocHost(reinterpret_cast<void**>(&impl_->logits_h), size_t(impl_->opt.max_batch) * V * 4),
                    "pinned logits");
  }
  // One copy per run of consecutive wanted rows, enqueued behind the step.
  for (int i = 0; i < n;) {
    if (!want_rows[i]) {
      ++i;
      continue;
    }
    int j = i;
    while (j < n && want_rows[j]) ++j;
    GPTOSS_CUDA_TRY(cudaMemcpyAsync(impl_->logits_h + i * V, impl_->logits + i * V, (j - i) * V * 4,
                                    cudaMemcpyDeviceToHost, impl_->stream),
                    "logits rows");
    i = j;
  }
  GPTOSS_RETURN_IF_ERROR(sync());
  for (int i = 0; i < n; ++i) rows[i] = want_rows[i] ? impl_->logits_h + i * V : nullptr;
  if (next != nullptr) std::copy(impl_->next_h, impl_->next_h + n, next);
  return Status::ok();
}

Status DecodeEngine::step(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                          std::span<const int32_t> slots, float* logits, int32_t* next, bool use_graph) {
  return step(tokens, positions, slots, logits, next, use_graph, /*sync_at_end=*/true);
}

Status DecodeEngine::step(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                          std::span<const int32_t> slots, float* logits, int32_t* next, bool use_graph,
                          bool sync_at_end) {
  const int n = static_cast<int>(tokens.size());
  if (positions.size() != tokens.size() || slots.size() != tokens.size()) {
    return Error("cuda decode: tokens, positions and slots differ in length");
  }
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= impl_->c.vocab_size) return Error("cuda decode: token {} out of range", tokens[i]);
    if (positions[i] < 0 || positions[i] >= impl_->opt.max_context) {
      return Error("cuda decode: position {} outside the context of {}", positions[i], impl_->opt.max_context);
    }
    if (slots[i] < 0 || slots[i] >= impl_->opt.max_batch) return Error("cuda decode: slot {} out of range", slots[i]);
  }
  GPTOSS_RETURN_IF_ERROR(sync());  // the pinned inputs may still be read by a previous launch
  set_inputs(tokens, positions, slots);
  GPTOSS_RETURN_IF_ERROR(launch(n, use_graph));
  if (logits != nullptr) {
    GPTOSS_CUDA_TRY(cudaMemcpyAsync(logits, impl_->logits, size_t(n) * impl_->c.vocab_size * 4, cudaMemcpyDeviceToHost,
                                    impl_->stream),
                    "logits");
  }
  if (!sync_at_end) return Status::ok();
  GPTOSS_RETURN_IF_ERROR(sync());
  if (next != nullptr) std::copy(impl_->next_h, impl_->next_h + n, next);
  return Status::ok();
}

double DecodeEngine::weight_bytes_per_token() const {
  const ModelConfig& c = impl_->c;
  const double H = c.hidden_size, I = c.intermediate_size, Q = c.num_heads * 64.0, KV = c.num_kv_heads * 64.0;
  const double attn = 2.0 * (Q * H + 2 * KV * H + H * Q + Q + 2 * KV + H + c.num_heads + 2 * H);
  const double router = 2.0 * (c.num_experts * H + c.num_experts);
  const double expert = (2 * I * H + H * I) * (0.5 + 1.0 / 32) + 2.0 * (2 * I + H);
  return c.num_layers * (attn + router + c.experts_per_token * expert) + 2.0 * (c.vocab_size * H + H);
}

Expected<ModelWeights> random_weights(Backend& be, const ModelConfig& c, uint64_t seed) {
  uint64_t s = seed;
  auto dense = [&](int64_t rows, int64_t cols, float lo, float hi) -> Expected<Weight> {
    Weight w;
    GPTOSS_ASSIGN_OR_RETURN(w.buf, be.alloc(size_t(rows) * cols * 2));
    w.type = ElemType::kBF16;
    w.rows = rows;
    w.cols = cols;
    GPTOSS_CUDA_TRY(fill_bf16_uniform(w.buf.as<uint16_t>(), size_t(rows) * cols, ++s, lo, hi, nullptr), "fill");
    return w;
  };
  auto experts = [&](int64_t E, int64_t rows, int64_t cols) -> Expected<Mxfp4Experts> {
    Mxfp4Experts m;
    const size_t nb = size_t(E) * rows * (cols / 32);
    GPTOSS_ASSIGN_OR_RETURN(m.blocks, be.alloc(nb * 16));
    GPTOSS_ASSIGN_OR_RETURN(m.scales, be.alloc(nb));
    GPTOSS_CUDA_TRY(fill_u8_uniform(m.blocks.as<uint8_t>(), nb * 16, ++s, 0, 255, nullptr), "fill");
    GPTOSS_CUDA_TRY(fill_u8_uniform(m.scales.as<uint8_t>(), nb, ++s, 118, 121, nullptr), "fill");
    m.experts = E;
    m.rows = rows;
    m.cols = cols;
    return m;
  };
  const int64_t V = c.vocab_size, H = c.hidden_size, E = c.num_experts, I = c.intermediate_size;
  const int64_t Q = int64_t{c.num_heads} * c.head_dim, KV = int64_t{c.num_kv_heads} * c.head_dim;
  ModelWeights w;
  GPTOSS_ASSIGN_OR_RETURN(w.embedding, dense(V, H, -1.0f, 1.0f));
  GPTOSS_ASSIGN_OR_RETURN(w.final_norm, dense(1, H, 0.8f, 1.2f));
  GPTOSS_ASSIGN_OR_RETURN(w.unembedding, dense(V, H, -0.03f, 0.03f));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights L;
    L.sliding = l < static_cast<int>(c.layer_is_sliding.size()) && c.layer_is_sliding[l];
    GPTOSS_ASSIGN_OR_RETURN(L.attn_norm, dense(1, H, 0.8f, 1.2f));
    GPTOSS_ASSIGN_OR_RETURN(L.q, dense(Q, H, -0.03f, 0.03f));
    GPTOSS_ASSIGN_OR_RETURN(L.q_bias, dense(1, Q, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.k, dense(KV, H, -0.03f, 0.03f));
    GPTOSS_ASSIGN_OR_RETURN(L.k_bias, dense(1, KV, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.v, dense(KV, H, -0.03f, 0.03f));
    GPTOSS_ASSIGN_OR_RETURN(L.v_bias, dense(1, KV, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.o, dense(H, Q, -0.03f, 0.03f));
    GPTOSS_ASSIGN_OR_RETURN(L.o_bias, dense(1, H, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.sinks, dense(1, c.num_heads, -1.0f, 1.0f));
    GPTOSS_ASSIGN_OR_RETURN(L.mlp_norm, dense(1, H, 0.8f, 1.2f));
    GPTOSS_ASSIGN_OR_RETURN(L.router, dense(E, H, -0.03f, 0.03f));
    GPTOSS_ASSIGN_OR_RETURN(L.router_bias, dense(1, E, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.mlp1, experts(E, 2 * I, H));
    GPTOSS_ASSIGN_OR_RETURN(L.mlp1_bias, dense(E, 2 * I, -0.05f, 0.05f));
    GPTOSS_ASSIGN_OR_RETURN(L.mlp2, experts(E, H, I));
    GPTOSS_ASSIGN_OR_RETURN(L.mlp2_bias, dense(E, H, -0.05f, 0.05f));
    w.layers.push_back(std::move(L));
  }
  GPTOSS_CUDA_TRY(cudaDeviceSynchronize(), "random weights");
  return w;
}

}  // namespace gptoss::cuda
