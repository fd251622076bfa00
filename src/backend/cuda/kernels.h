// Host entry points of the CUDA kernels for gpt-oss decode (and small batches). Plain C++ types only,
// so any translation unit can include this. Every launcher enqueues on `stream` and returns the
// launch error (cudaGetLastError) as an int (cudaError_t), 0 on success.
//
// Layouts are the checkpoints' own (HF names): bf16 matrices row-major [out, in]; MXFP4 experts
// blocks [E, rows, cols/32, 16] + E8M0 scales [E, rows, cols/32]; biases bf16. Activations are f32.
// Token metadata (positions, KV slots, expert ids) lives in device memory so that a captured CUDA
// graph can be replayed with new values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kv_pages.h"

typedef struct CUstream_st* cudaStream_t;

namespace gptoss::cuda {

// Largest number of token rows one GEMV launch handles; launchers loop over larger T.
inline constexpr int kMaxGemvTokens = 4;

// Per-block timeline of the decode kernels (a measurement, bench/kernels/cuda/NOTES.md v13; only in
// builds with GPTOSS_CUDA_TIMELINE defined, the gptoss_cuda_timeline binary; elsewhere set_timeline
// returns cudaErrorNotSupported and the kernels carry no trace of it): while a log is set, thread 0 of every block of the instrumented kernels (qkv, attention, the bf16 GEMVs,
// the router variants 0 and 2, the MoE pair, argmax) appends one record: %globaltimer (ns) at its start, after its
// griddepcontrol.wait returned (0 where the kernel has none) and at its end (thread 0's; the epilogue
// threads), the kernel kind and the block count of its grid. count is a device counter (set to 0
// before a step); records past capacity are dropped (count still counts them). Off: rec == nullptr
// (the default). The log is read when a kernel runs, so a captured graph follows set_timeline
// without a new capture.
enum TimelineKind : uint32_t {
  kTimelineQkv = 1,
  kTimelineAttention,
  kTimelineGemv,
  kTimelineRouter,
  kTimelineGateUp,
  kTimelineDown,
  kTimelineArgmax,
};
struct TimelineRecord {
  unsigned long long start, wait, end;
  uint32_t kind, blocks;
};
int set_timeline(TimelineRecord* rec, uint32_t* count, uint32_t capacity);

// Where a GEMV gets its input rows from.
struct GemvInput {
  const float* x = nullptr;  // [T, x_stride]
  int x_stride = 0;
  // RMSNorm prologue: when gain != nullptr the rows are normalized (eps) and multiplied by gain.
  const uint16_t* norm_gain = nullptr;
  float norm_eps = 1e-5f;
};

// out[t, r] (=|+=) sum_c W[r, c] * in[t, c] + bias[r]; bias may be null. rows any, cols % 8 == 0.
int gemv_bf16(const uint16_t* w, const uint16_t* bias, int rows, int cols, const GemvInput& in, int T,
              float* out, int out_stride, bool accumulate, cudaStream_t stream);

// GEMV shapes at batch 1 (bench/kernels/cuda/NOTES.md): 0 = 16 loads per lane, 2 blocks of 8 warps
// per SM (v7); 1 = 12 loads per lane in 80 registers, 3 blocks per SM, for matrices whose grid then
// fits one wave (qkv, o_proj; the unembedding keeps shape 0). Same sums in the same order.
inline constexpr int kGemvDefault = 1;
void set_gemv_variant(int v);

// The fused attention input projection: qkv = RMSNorm(x) . Wqkv^T + b, with Wqkv the rows of q, k and
// v (q_heads + 2 * kv_heads heads of head_dim = 64, given as three pointers so checkpoints' separate
// q/k/v tensors are used as they are), then RoPE (YaRN; pairs (i, i + 32); cos/sin times
// `concentration`) on q and k, q written to q_out [T, q_heads * 64] and k/v stored into the KV cache
// k_cache/v_cache [slots, capacity, kv_heads, 64] at (slot[t], pos[t] % capacity).
struct QkvRopeArgs {
  const uint16_t* wq;
  const uint16_t* wk;
  const uint16_t* wv;
  const uint16_t* bq;
  const uint16_t* bk;
  const uint16_t* bv;
  int q_heads;
  int kv_heads;
  int cols;
  const float* inv_freq;  // device, 32 entries
  float concentration;
  const int32_t* pos;   // device [T]
  const int32_t* slot;  // device [T]
  float* q_out;
  float* k_cache;
  float* v_cache;
  int capacity;
  KvPages pages = {};  // paged cache: rows found through the table (kv_pages.h)
};
int qkv_rope_store(const QkvRopeArgs& a, const GemvInput& in, int T, cudaStream_t stream);

// Flash-decoding attention for T queries (head_dim 64): q [T, q_heads * 64] (already rotated), keys
// and values from the cache for slot[t], positions max(0, pos - window + 1) .. pos (window 0: all),
// split into nsplit ranges, one block per (KV head, token, split). Each block writes its partial
// (running max, denominator, unnormalized output) to part [T, q_heads, nsplit, 66]; the last block of
// a (token, KV head) to finish (counters [T, kv_heads], zero before the call and left zero after it)
// combines them with the sink logits into out [T, q_heads * 64]. scale multiplies q.k (not the sink).
// pages: a paged cache (kv_pages.h); default contiguous.
int attention(const float* q, int T, int q_heads, int kv_heads, const float* k_cache, const float* v_cache,
              int capacity, const int32_t* pos, const int32_t* slot, int window, float scale, const uint16_t* sinks,
              int nsplit, float* part, int32_t* counters, float* out, cudaStream_t stream, bool kv_ready = false,
              KvPages pages = {});

// Attention for T query tokens of ONE sequence at consecutive positions p0 .. p0 + T - 1 of `slot`
// (prefill; NOTES v23), q_heads == 8 * kv_heads: blocks of tokens_per_block (4 or 8) tokens x one KV
// head, each K/V tile read once for them; no splits (out written directly). Same inputs and output as
// attention(); its sums are tile_step's over 32-position tiles counted from the first token's window.
int attention_prefill(const float* q, int T, int q_heads, int kv_heads, const float* k_cache, const float* v_cache,
                      int capacity, int p0, int slot, int window, float scale, const uint16_t* sinks, float* out,
                      cudaStream_t stream, int tokens_per_block, KvPages pages = {});

// Attention kernels: 0 = the last block of a (token, KV head) combines the splits' partials through
// global memory and a counter (v9); 1 = the splits form one thread-block cluster and block 0 combines
// them from its shared memory (v10; nsplit <= 16, else 0); 2 = kernel 0 loading its first tile of
// cached keys/values before griddepcontrol.wait, where the caller passes kv_ready (every row before
// each token's position was written before the previous kernel started: decode steps with one token
// per sequence, not prefill) and q_heads / kv_heads == 8. Same arithmetic. 3 (v20, the default; where 2
// applies, else kernel 0) = 2 with splits of at least 32 of the token's positions (the other splits' blocks
// idle; one active split writes its output itself), the next kernel let launch at the start where the
// token's span is <= 256 positions, and the last split found by one acq_rel atomic (bench/kernels/cuda/
// NOTES.md v20). Kernel 3 splits short spans at other points than 0-2 (other roundings of the same sums).
inline constexpr int kAttentionDefault = 3;
inline constexpr int kAttentionVariants = 4;
void set_attention_variant(int v);

// The MXFP4 expert kernels take their inputs in "x16" form (x16.cuh): fp16 hi/lo halves of x * 2^p,
// x16_bytes(rows, cols) bytes for `rows` rows, plus inv[row] = 2^-p. stage_x16 converts f32 rows.
size_t x16_bytes(int rows, int cols);
int stage_x16(const float* x, int x_stride, int rows, int cols, uint32_t* x16, float* inv, cudaStream_t stream);

// Router for T tokens: xn[t] = RMSNorm(x[t]) * gain (written as f32 when xn != nullptr, and in x16 form
// to xn16/xn_inv); logits = Wr . xn + br (scratch [T, E]); the top k (descending, ties to the lower
// index) and a softmax over those k. idx/weight are [T, k]. counters [T] must be zero before the call
// and are left zero. E <= 256, k <= 8.
int router_topk(const float* x, int x_stride, const uint16_t* gain, float eps, const uint16_t* wr,
                const uint16_t* br, int experts, int cols, int k, int T, float* xn, uint32_t* xn16, float* xn_inv,
                float* logits, int32_t* counters, int32_t* idx, float* weight, cudaStream_t stream);

// Router kernels: 0 = blocks of 8 expert rows and a last-block top-k (v9); 1 = one block of 1024 threads
// per token with the router matrix in shared memory (v10; used where it fits in 200 KB, else 0);
// 2 = kernel 0's blocks as one cluster per token, logits gathered in block 0's shared memory (v10; for
// at most 64 experts, else 0). Same logits, ids and weights.
//
// 3 = the router folded into the o_proj GEMV (gemv_bf16_router, v11), where the caller supports it (the
// graph decode engine at batch 1; router_topk itself then runs kernel 2). Measured slower than 2 in
// the decode graph (bench/kernels/cuda/NOTES.md v11), so not the default.
//
// 4 = kernel 2 with a shorter chain after the wait (v17: logits into block 0 by st.async on an mbarrier
// armed before the wait, no second cluster barrier, the x16 scale from the normalizing pass, top k in one
// pass); at most 32 experts, else 2. The same bits as 2; the default (decode +3%, NOTES v17).
inline constexpr int kRouterDefault = 4;
void set_router_variant(int v);
int router_variant();

// The router folded into the o_proj GEMV at batch 1 (router variant 3): out[r] += W[r, :] . in + bias[r]
// (the residual), and, from the updated row, what router_topk computes for token 0: each block adds
// up, for its output rows r, Wr[e, r] * gain[r] * out[r] for every expert e and out[r]^2, into
// partial[0..E, block] (router_fold_partials floats), and the last block to finish (counter, zero
// before the call and left zero) sums the blocks' partials in a fixed order (deterministic),
// takes the RMS scale s (the router and the RMSNorm are linear apart from it: logit_e = s * sum_r
// Wr[e, r] gain[r] out[r] + br[e]), the top k and their softmax, and writes the normalized row
// (x16 form, and f32 to xn when not null) and the logits (when not null). E <= 256, k <= 8.
struct RouterFold {
  const uint16_t* gain = nullptr;  // the MLP RMSNorm gain [rows]
  float eps = 1e-5f;
  const uint16_t* wr = nullptr;  // [experts, rows]
  const uint16_t* br = nullptr;  // [experts] or null
  int experts = 0;
  int k = 0;
  float* partial = nullptr;  // router_fold_partials(rows, experts) floats
  int32_t* counter = nullptr;
  float* xn = nullptr;  // optional [rows]
  uint32_t* xn16 = nullptr;
  float* xn_inv = nullptr;
  float* logits = nullptr;  // optional [experts]
  int32_t* idx = nullptr;   // [k]
  float* weight = nullptr;  // [k]
};
size_t router_fold_partials(int rows, int experts);
int gemv_bf16_router(const uint16_t* w, const uint16_t* bias, int rows, int cols, const GemvInput& in, float* out,
                     const RouterFold& rf, cudaStream_t stream);

// MoE first projection for S = T*k (token, expert) slots: slot s uses token s / k and expert idx[s];
// u = W1[e] . x[t] + b1[e] (rows interleave gate/up), h[s, j] = swiglu(u[2j], u[2j+1]) with
// gate = min(g, limit), up = clamp(u, -limit, limit), h = gate * sigmoid(alpha * gate) * (up + 1).
// x comes in x16 form; h is written as f32 [S, rows/2] and/or in x16 form (fixed scale 2^8, so the
// down projection takes h_inv = nullptr) when the pointers are not null.
// rows % 16 == 0, (rows / 2) % 32 == 0, cols % 32 == 0.
int moe_gate_up_swiglu(const uint32_t* x16, const float* x_inv, const int32_t* idx, int T, int k,
                       const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                       float limit, float alpha, float* h, uint32_t* h16, cudaStream_t stream);

// MoE second projection: out[t, r] (+)= sum_j weight[t, j] * (W2[idx[t, j]] . h[t*k + j] + b2[...]),
// h in x16 form with per-slot h_inv (nullptr: the gate_up kernel's fixed scale). The k slots of a token
// are summed in order in a thread-block cluster (deterministic). idx_ready: idx and weight were written
// before the previous kernel on the stream started, so the weights are requested before
// griddepcontrol.wait. rows % 16 == 0, cols % 32 == 0, k <= 8.
int moe_down_accumulate(const uint32_t* h16, const float* h_inv, const int32_t* idx, const float* weight, int T,
                        int k, const uint8_t* blocks, const uint8_t* scales, const uint16_t* bias, int rows, int cols,
                        float* out, bool accumulate, cudaStream_t stream, bool idx_ready = false);

// The MoE kernels (bench/kernels/cuda/NOTES.md v16; E2M1 decoded by bit placement, v15): one 16-row tile
// per warp, 3 chunks in flight, 6 chunks per warp, the fast path's addresses stepped once per batch; down
// sums the k slots in a thread-block cluster. gate_up variant 1 (v25): the same warps' work in a persistent
// kernel whose weight tiles come through shared memory by the bulk-copy engine (where the T x16 rows and its
// stages fit in shared memory, else variant 0); variant 0: v16's gate_up (LAB_MOE_PAIRS, the decode check's
// --shapes). down variant 1 (v51, the default): at one token, blocks of two slots in clusters of k / 2, each
// warp copying only its own slice of its h row; variant 0 (and any batch of more than one token): one slot a
// block, clusters of k. The same sums either way. v15's baseline variants are gone; their numbers stay in NOTES.
inline constexpr int kMoeVariants = 2;
inline constexpr int kMoeDefaultDown = 1;
// The peak memory bandwidth of the device current at the first call, bytes/s, from its attributes (2 x the memory
// clock x the bus width); 0 where a query fails (its error cleared). One lookup per process.
double peak_memory_bandwidth();
// The default gate_up variant, by peak_memory_bandwidth(): 1 (the ring) below 4 TB/s, 0
// at or above it. Measured (NOTES v25, v26), batch-1 decode, same binary, interleaved: on an H100 (3.35 TB/s
// peak) the ring +2.9..+4.9% (run R); on an H200 (4.8 TB/s) v16's gate_up +0.5..+1.6%, its blocks leaving room
// for down's to start beside them, the ring's not.
int moe_default_gate_up();
void set_moe_variant(int gate_up, int down);

// out[t, :] = f32(table[tokens[t], :]) (bf16 table, tokens in device memory).
int embed_bf16(const uint16_t* table, int cols, const int32_t* tokens, int T, float* out,
               cudaStream_t stream);

// out[t] = argmax over n of logits[t, :] (ties to the lower index; NaN never wins). One block per row,
// float4 loads with 8 in flight per thread (v13: 10.5 us for the 20b's logits on an H100); with `part`
// (argmax_scratch(n, T) entries) and `counters` (T zeroed words, left zeroed) the row is split over
// blocks of 4096 columns whose last one to finish reduces their maxima in order (NOTES v24).
int argmax_rows(const float* logits, int n, int T, int32_t* out, cudaStream_t stream, uint64_t* part = nullptr,
                uint32_t* counters = nullptr);
size_t argmax_scratch(int n, int T);

// Programmatic dependent launch for the decode kernels (GEMVs and the router prefetch their weights
// while the previous kernel finishes). On by default; the bench compares both.
void set_pdl(bool on);

// An empty kernel, for measuring launch overhead.
int noop_kernel_launch(cudaStream_t stream);

// Device-side fill with a deterministic hash (bench and tests): bf16 uniform in [lo, hi), bytes
// uniform in [lo, hi] (for MXFP4 codes use 0..255, for scales a narrow exponent range).
int fill_bf16_uniform(uint16_t* p, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream);
int fill_u8_uniform(uint8_t* p, size_t n, uint64_t seed, int lo, int hi, cudaStream_t stream);

}  // namespace gptoss::cuda
