#include "model/weights.h"

#include <fmt/format.h>

#include <chrono>

namespace gptoss {
namespace {

class Binder {
 public:
  Binder(const ModelFiles& files, Backend& backend, const BindOptions& options)
      : files_(files), backend_(backend), options_(options) {}

  // A projection matrix that --dense-weights q8 stores as Q8_0 (its figures go to `stats`).
  Expected<Weight> matrix(const std::string& name, const std::vector<int64_t>& shape, Q8ClassStats* stats) {
    if (options_.dense != DenseWeights::kQ8) return dense(name, shape);
    GPTOSS_ASSIGN_OR_RETURN(const TensorView* t, checked(name, shape));
    return convert_to_q8_0(*t, shape[0], shape[1], backend_, options_.threads, stats);
  }

  // A dense BF16/F32 tensor of exactly `shape`, as a [rows, cols] weight (vectors are [1, n]).
  Expected<Weight> dense(const std::string& name, const std::vector<int64_t>& shape) {
    GPTOSS_ASSIGN_OR_RETURN(const TensorView* t, checked(name, shape));
    Weight w;
    GPTOSS_ASSIGN_OR_RETURN(w.buf, backend_.upload_weight(t->data, t->nbytes));
    w.type = t->dtype == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32;
    w.rows = shape.size() == 1 ? 1 : shape[0];
    w.cols = shape.back();
    return w;
  }

  Expected<const TensorView*> checked(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* t = files_.tensors.find(name);
    if (!t) return Error("{}: missing tensor '{}'", files_.dir, name);
    if (t->dtype != DType::kBF16 && t->dtype != DType::kF32) {
      return Error("{}: tensor '{}' is {}, expected BF16 or F32", t->file, name, dtype_name(t->dtype));
    }
    if (t->shape != shape) {
      return Error("{}: tensor '{}' has shape {}, expected {}", t->file, name, shape_to_string(t->shape),
                   shape_to_string(shape));
    }
    return t;
  }

  Expected<Buffer> u8(const std::string& name, const std::vector<int64_t>& shape) {
    GPTOSS_ASSIGN_OR_RETURN(const TensorView* t, files_.tensors.get(name, DType::kU8, shape));
    return backend_.upload_weight(t->data, t->nbytes);
  }

  Expected<Mxfp4Experts> experts(const std::string& blocks, const std::string& scales, int64_t E,
                                 int64_t rows, int64_t cols) {
    Mxfp4Experts m;
    GPTOSS_ASSIGN_OR_RETURN(m.blocks, u8(blocks, {E, rows, cols / 32, 16}));
    GPTOSS_ASSIGN_OR_RETURN(m.scales, u8(scales, {E, rows, cols / 32}));
    m.experts = E;
    m.rows = rows;
    m.cols = cols;
    return m;
  }

 private:
  const ModelFiles& files_;
  Backend& backend_;
  const BindOptions& options_;
};

}  // namespace

Expected<ModelWeights> bind_weights(const ModelFiles& files, Backend& backend, const BindOptions& options) {
  const ModelConfig& c = files.config;
  const int64_t V = c.vocab_size, H = c.hidden_size, E = c.num_experts, I = c.intermediate_size;
  const int64_t Q = int64_t{c.num_heads} * c.head_dim, KV = int64_t{c.num_kv_heads} * c.head_dim;
  if (H % 32 != 0 || I % 32 != 0) {
    return Error("{}: hidden_size {} and intermediate_size {} must be multiples of 32 (MXFP4 blocks)",
                 files.dir, H, I);
  }
  if (c.head_dim % 2 != 0 || c.head_dim > 1024) {
    return Error("{}: head_dim {} must be even and at most 1024", files.dir, c.head_dim);
  }
  if (E > 256) return Error("{}: {} experts; at most 256 are supported", files.dir, E);
  // Converted weights are written in place in alloc()'d memory: host memory, the cpu backends only.
  GPTOSS_RETURN_IF_ERROR(check_dense_weights_device(options.dense, backend.name()));
  const auto t0 = std::chrono::steady_clock::now();
  Q8Report report;
  report.converted = options.dense == DenseWeights::kQ8;
  Q8ClassStats* attn = &report.attention;
  Binder b(files, backend, options);
  ModelWeights w;
  const bool hf = files.layout == CheckpointLayout::kHF;
  GPTOSS_ASSIGN_OR_RETURN(w.embedding, b.dense(hf ? "model.embed_tokens.weight" : "embedding.weight", {V, H}));
  GPTOSS_ASSIGN_OR_RETURN(w.final_norm, b.dense(hf ? "model.norm.weight" : "norm.scale", {H}));
  GPTOSS_ASSIGN_OR_RETURN(w.unembedding, b.matrix(hf ? "lm_head.weight" : "unembedding.weight", {V, H}, &report.unembedding));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights L;
    L.sliding = l < static_cast<int>(c.layer_is_sliding.size()) && c.layer_is_sliding[l];
    if (hf) {
      const std::string p = fmt::format("model.layers.{}.", l);
      GPTOSS_ASSIGN_OR_RETURN(L.attn_norm, b.dense(p + "input_layernorm.weight", {H}));
      GPTOSS_ASSIGN_OR_RETURN(L.q, b.matrix(p + "self_attn.q_proj.weight", {Q, H}, attn));
      GPTOSS_ASSIGN_OR_RETURN(L.q_bias, b.dense(p + "self_attn.q_proj.bias", {Q}));
      GPTOSS_ASSIGN_OR_RETURN(L.k, b.matrix(p + "self_attn.k_proj.weight", {KV, H}, attn));
      GPTOSS_ASSIGN_OR_RETURN(L.k_bias, b.dense(p + "self_attn.k_proj.bias", {KV}));
      GPTOSS_ASSIGN_OR_RETURN(L.v, b.matrix(p + "self_attn.v_proj.weight", {KV, H}, attn));
      GPTOSS_ASSIGN_OR_RETURN(L.v_bias, b.dense(p + "self_attn.v_proj.bias", {KV}));
      GPTOSS_ASSIGN_OR_RETURN(L.o, b.matrix(p + "self_attn.o_proj.weight", {H, Q}, attn));
      GPTOSS_ASSIGN_OR_RETURN(L.o_bias, b.dense(p + "self_attn.o_proj.bias", {H}));
      GPTOSS_ASSIGN_OR_RETURN(L.sinks, b.dense(p + "self_attn.sinks", {c.num_heads}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp_norm, b.dense(p + "post_attention_layernorm.weight", {H}));
      GPTOSS_ASSIGN_OR_RETURN(L.router, b.dense(p + "mlp.router.weight", {E, H}));
      GPTOSS_ASSIGN_OR_RETURN(L.router_bias, b.dense(p + "mlp.router.bias", {E}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp1, b.experts(p + "mlp.experts.gate_up_proj_blocks",
                                                p + "mlp.experts.gate_up_proj_scales", E, 2 * I, H));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp1_bias, b.dense(p + "mlp.experts.gate_up_proj_bias", {E, 2 * I}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp2, b.experts(p + "mlp.experts.down_proj_blocks",
                                                p + "mlp.experts.down_proj_scales", E, H, I));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp2_bias, b.dense(p + "mlp.experts.down_proj_bias", {E, H}));
    } else {
      const std::string p = fmt::format("block.{}.", l);
      GPTOSS_ASSIGN_OR_RETURN(L.attn_norm, b.dense(p + "attn.norm.scale", {H}));
      // Fused [q; k; v] rows, no per-head interleaving: slice it.
      GPTOSS_ASSIGN_OR_RETURN(Weight qkv, b.matrix(p + "attn.qkv.weight", {Q + 2 * KV, H}, attn));
      GPTOSS_ASSIGN_OR_RETURN(Weight qkv_bias, b.dense(p + "attn.qkv.bias", {Q + 2 * KV}));
      L.q = qkv.row_slice(0, Q);
      L.k = qkv.row_slice(Q, KV);
      L.v = qkv.row_slice(Q + KV, KV);
      // A bias vector is one row of Q + 2KV: slice it as a [Q+2KV, 1] column.
      Weight col = qkv_bias;
      col.rows = Q + 2 * KV;
      col.cols = 1;
      L.q_bias = col.row_slice(0, Q);
      L.k_bias = col.row_slice(Q, KV);
      L.v_bias = col.row_slice(Q + KV, KV);
      for (Weight* bias : {&L.q_bias, &L.k_bias, &L.v_bias}) {
        bias->cols = bias->rows;
        bias->rows = 1;
      }
      GPTOSS_ASSIGN_OR_RETURN(L.sinks, b.dense(p + "attn.sinks", {c.num_heads}));
      GPTOSS_ASSIGN_OR_RETURN(L.o, b.matrix(p + "attn.out.weight", {H, Q}, attn));
      GPTOSS_ASSIGN_OR_RETURN(L.o_bias, b.dense(p + "attn.out.bias", {H}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp_norm, b.dense(p + "mlp.norm.scale", {H}));
      GPTOSS_ASSIGN_OR_RETURN(L.router, b.dense(p + "mlp.gate.weight", {E, H}));
      GPTOSS_ASSIGN_OR_RETURN(L.router_bias, b.dense(p + "mlp.gate.bias", {E}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp1, b.experts(p + "mlp.mlp1_weight.blocks", p + "mlp.mlp1_weight.scales",
                                                E, 2 * I, H));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp1_bias, b.dense(p + "mlp.mlp1_bias", {E, 2 * I}));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp2, b.experts(p + "mlp.mlp2_weight.blocks", p + "mlp.mlp2_weight.scales",
                                                E, H, I));
      GPTOSS_ASSIGN_OR_RETURN(L.mlp2_bias, b.dense(p + "mlp.mlp2_bias", {E, H}));
    }
    w.layers.push_back(std::move(L));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (options.report) *options.report = report;
  return w;
}

}  // namespace gptoss
