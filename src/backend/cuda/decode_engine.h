// The fast CUDA decode path: one token for each of up to max_batch sequences per step, through the
// fused kernels (RMSNorm folded into the q/k/v, router and unembedding GEMVs; RoPE fused with the KV
// write; flash-decoding whose last split combines; fused router top-k; MXFP4 expert GEMVs with
// SwiGLU and the weighted accumulate), the whole step captured once per batch size in a CUDA graph.
// Larger batches swap in tensor-core GEMMs (moe_gemm.h): the MoE layers from moe_gemm_min_batch
// sequences (slots grouped by expert, each used expert read once per step), the dense projections
// from dense_gemm_min_batch (fp16 copies of q/k/v/o and the unembedding).
//
// Weights are a ModelWeights bound on the cuda backend (bind_weights uploads the checkpoint's tensors
// as they are) or generated on the device at full size (random_weights, for benches). The engine owns
// its KV cache (f32, [slot][position][kv_head][64] per layer) unless DecodeOptions hands it one.
//
// This is model logic living beside the kernels: it is the GPU's counterpart of model/forward.cc for
// the decode hot path and is checked against it (tests and bench/kernels/cuda/decode_check).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/kv_pages.h"
#include "core/status.h"
#include "model/config.h"
#include "model/weights.h"

namespace gptoss::cuda {

// The batch sizes from which the decode engine's MoE layers and dense projections run on GEMMs
// (measured on an H100, bench/kernels/cuda/NOTES.md "Batched decode": the MoE GEMM first beats the
// GEMVs at 12 sequences, the dense GEMMs at 6-8).
inline constexpr int kDecodeMoeGemmMinBatch = 12;
inline constexpr int kDecodeDenseGemmMinBatch = 8;

inline constexpr int kStepIoOneCopy = 1, kStepIoMappedNext = 2, kStepIoSplitArgmax = 4;

struct DecodeOptions {
  int max_batch = 1;
  int max_context = 4096;  // positions per sequence
  // Flash-decoding splits per (head, token) in the full-attention layers at batch 1, and in the others
  // (sliding-window layers, every layer of larger batches); at most 32; 0: from max_context
  // (max_context / 20, at most 32; max_context / 64, at most 16).
  int nsplit = 0;
  int nsplit_sliding = 0;
  // Batches of at least this many tokens run the MoE layers through the grouped tensor-core GEMM
  // (moe_gemm.h: slots grouped by expert on the device, each used expert's weights read once per
  // step) instead of the per-slot GEMV kernels. 0: kDecodeMoeGemmMinBatch, or the environment's
  // GPTOSS_CUDA_DECODE_MOE_GEMM_MIN when set.
  int moe_gemm_min_batch = 0;
  // Slots per GEMM tile (8, 16 or kMoeGemmTileSlots = 64; moe_gemm.h). 0: GPTOSS_CUDA_DECODE_MOE_TILE
  // when set, else 8 while a batch has at most 4 slots per expert on average, 16 above.
  int moe_gemm_tile_slots = 0;
  // Batches of at least this many tokens run the dense projections (q/k/v, o, unembedding) through the
  // same tensor-core kernel (moe_gemm.h dense_gemm_x16, on fp16 copies of those matrices made at
  // create() when max_batch reaches it: +2.4 GB at the 20b's shapes) instead of GEMVs that read the
  // weights once per 4 tokens. 0: kDecodeDenseGemmMinBatch, or GPTOSS_CUDA_DECODE_DENSE_GEMM_MIN.
  int dense_gemm_min_batch = 0;
  // External KV (optional; all three empty or one entry per layer): device f32 buffers laid out
  // [slot][capacity][kv_head][64], position p stored at p % capacity (model/kv_cache.h's layout, so
  // the op path's prefill and this engine share one cache). Empty: the engine allocates its own
  // with capacity max_context. capacity >= min(sliding_window, max_context) on sliding layers,
  // == max_context on the others.
  std::vector<float*> k_layers, v_layers;
  std::vector<int> capacities;
  // External paged KV (optional; empty or one entry per layer, page_size 0 for a contiguous layer): a
  // paged layer's capacity is max_context and its rows are found through the device page table
  // (KvLayer::page_table_device), which the caller keeps current before each step.
  std::vector<KvPages> kv_pages;
  // What a step does around its kernels (NOTES v24; a mask of kStepIo*; GPTOSS_CUDA_STEP_IO overrides):
  // one host-to-device copy of the inputs instead of three, the argmax kernel writing the greedy tokens
  // into pinned host memory instead of a device-to-host copy after it, and the argmax over the vocabulary
  // split over blocks (kernels.h argmax_rows with scratch) instead of one block per row.
  int step_io = kStepIoOneCopy | kStepIoMappedNext | kStepIoSplitArgmax;
};

class DecodeEngine {
 public:
  ~DecodeEngine();
  // `weights` must live in device memory (bound on the cuda backend) and outlive the engine.
  static Expected<std::unique_ptr<DecodeEngine>> create(const ModelConfig& config, const ModelWeights& weights,
                                                        const DecodeOptions& options);

  // Decodes tokens[i] at positions[i] for KV slots slots[i] (i < n <= max_batch). Copies the logits
  // ([n, vocab] f32) and/or the greedy next tokens to the host when the pointers are not null.
  // use_graph: replay (capturing on first use) the CUDA graph of this batch size.
  Status step(std::span<const int32_t> tokens, std::span<const int32_t> positions, std::span<const int32_t> slots,
              float* logits, int32_t* next, bool use_graph);
  // As step(), for callers that need some rows' logits and the other rows' greedy tokens: the rows i
  // with want_rows[i] set are copied (asynchronously, behind the step, one copy per run of wanted
  // rows) into the engine's pinned host buffer, and rows[i] points at row i there (valid until the
  // next step) or is null; next (when not null) receives all n greedy tokens (the argmax of each
  // row, ties to the lowest id; a NaN is never the maximum). No row wanted: only the ids cross.
  Status step_rows(std::span<const int32_t> tokens, std::span<const int32_t> positions, std::span<const int32_t> slots,
                   std::span<const uint8_t> want_rows, const float** rows, int32_t* next, bool use_graph);

  // Enqueue only (no host copies, no sync): for timing graph replays back to back.
  Status launch(int n, bool use_graph);
  Status sync();
  // Sets the step's inputs in pinned host memory (read by the next launch).
  void set_inputs(std::span<const int32_t> tokens, std::span<const int32_t> positions, std::span<const int32_t> slots);
  const int32_t* next_tokens_host() const;  // valid after sync() following launch()

  // Bytes of weights one decode step reads at batch 1 (dense + the selected experts), for roofline
  // ratios.
  double weight_bytes_per_token() const;

 private:
  struct Impl;
  explicit DecodeEngine(std::unique_ptr<Impl> impl);
  // step(); without sync_at_end it returns once the step and its logits copy are enqueued.
  Status step(std::span<const int32_t> tokens, std::span<const int32_t> positions, std::span<const int32_t> slots,
              float* logits, int32_t* next, bool use_graph, bool sync_at_end);
  std::unique_ptr<Impl> impl_;
};

// Full-size random weights with `config`'s shapes in device memory (bf16 uniform, MXFP4 random codes
// with scales in a narrow exponent range so activations stay finite). For benchmarks.
Expected<ModelWeights> random_weights(Backend& cuda_backend, const ModelConfig& config, uint64_t seed);

}  // namespace gptoss::cuda
