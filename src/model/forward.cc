#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "model/rope.h"

namespace gptoss {

Expected<std::unique_ptr<Model>> Model::create(ModelFiles files, Backend& backend, const BindOptions& options) {
  std::unique_ptr<Model> m(new Model(std::move(files), backend));
  BindOptions bo = options;
  bo.report = &m->q8_report_;
  GPTOSS_ASSIGN_OR_RETURN(m->weights_, bind_weights(m->files_, backend, bo));
  const YarnRope rope = yarn_rope(m->files_.config);
  m->inv_freq_.assign(rope.inv_freq.begin(), rope.inv_freq.end());
  m->concentration_ = static_cast<float>(rope.concentration);
  return m;
}

size_t Model::scratch_bytes(const ModelConfig& c, int rows, int logit_rows) {
  const size_t t = static_cast<size_t>(std::max(rows, 0)), f = sizeof(float);
  const size_t H = c.hidden_size, Q = size_t{1} * c.num_heads * c.head_dim,
               KV = size_t{1} * c.num_kv_heads * c.head_dim, E = c.num_experts, K = c.experts_per_token,
               I = c.intermediate_size;
  // Per row, as reserve() grows them: x, xn, tmp (H); q, attn (Q); k, v (KV); router (E);
  // idx (int32) and route_w (K); h (K * I). Per logits row: gathered (H) and logits (V).
  const size_t per_row = (3 * H + 2 * Q + 2 * KV + E + 2 * K + K * I) * f;
  const size_t r = static_cast<size_t>(std::max(logit_rows, 0));
  return t * per_row + r * (size_t{1} * c.hidden_size + c.vocab_size) * f;
}

Status Model::reserve(int T, int R) {
  const ModelConfig& c = files_.config;
  auto grow = [&](Buffer* b, size_t bytes) -> Status {
    if (b->bytes >= bytes) return Status::ok();
    GPTOSS_ASSIGN_OR_RETURN(*b, backend_.alloc(bytes));
    return Status::ok();
  };
  if (T > cap_rows_) {
    const size_t t = static_cast<size_t>(T), f = sizeof(float);
    const size_t H = c.hidden_size, Q = size_t{1} * c.num_heads * c.head_dim,
                 KV = size_t{1} * c.num_kv_heads * c.head_dim, E = c.num_experts, K = c.experts_per_token,
                 I = c.intermediate_size;
    GPTOSS_RETURN_IF_ERROR(grow(&x_, t * H * f));
    GPTOSS_RETURN_IF_ERROR(grow(&xn_, t * H * f));
    GPTOSS_RETURN_IF_ERROR(grow(&q_, t * Q * f));
    GPTOSS_RETURN_IF_ERROR(grow(&k_, t * KV * f));
    GPTOSS_RETURN_IF_ERROR(grow(&v_, t * KV * f));
    GPTOSS_RETURN_IF_ERROR(grow(&attn_, t * Q * f));
    GPTOSS_RETURN_IF_ERROR(grow(&tmp_, t * H * f));
    GPTOSS_RETURN_IF_ERROR(grow(&router_, t * E * f));
    GPTOSS_RETURN_IF_ERROR(grow(&idx_, t * K * sizeof(int32_t)));
    GPTOSS_RETURN_IF_ERROR(grow(&route_w_, t * K * f));
    GPTOSS_RETURN_IF_ERROR(grow(&h_, t * K * I * f));
    cap_rows_ = T;
  }
  if (R > cap_logit_rows_) {
    GPTOSS_RETURN_IF_ERROR(grow(&gathered_, size_t{1} * R * c.hidden_size * sizeof(float)));
    GPTOSS_RETURN_IF_ERROR(grow(&logits_, size_t{1} * R * c.vocab_size * sizeof(float)));
    cap_logit_rows_ = R;
  }
  return Status::ok();
}

Status Model::forward(std::span<const ForwardPiece> pieces, KvCache& cache, std::vector<float>* logits) {
  const ModelConfig& c = files_.config;
  const KvCacheOptions& opt = cache.options();
  std::set<int> seen;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const ForwardPiece& p = pieces[i];
    if (!cache.in_use(p.sequence)) return Error("forward: piece {}: sequence {} is not open", i, p.sequence);
    if (!seen.insert(p.sequence).second) {
      return Error("forward: sequence {} appears in more than one piece of one call", p.sequence);
    }
    if (p.tokens.empty()) return Error("forward: piece {} (sequence {}) has no tokens", i, p.sequence);
    if (static_cast<int64_t>(cache.length(p.sequence)) + static_cast<int64_t>(p.tokens.size()) >
        opt.max_context) {
      return Error("forward: sequence {} would hold {} tokens; the cache holds at most {}", p.sequence,
                   cache.length(p.sequence) + p.tokens.size(), opt.max_context);
    }
    for (size_t j = 0; j < p.tokens.size(); ++j) {
      if (p.tokens[j] >= static_cast<uint32_t>(c.vocab_size)) {
        return Error("forward: piece {} token {} is id {}, outside the vocabulary of {}", i, j, p.tokens[j],
                     c.vocab_size);
      }
    }
  }

  // KV pages for every position the pieces will write (paged caches; nothing is run if one is short).
  for (const ForwardPiece& p : pieces) {
    GPTOSS_RETURN_IF_ERROR(cache.reserve(p.sequence, cache.length(p.sequence) + static_cast<int>(p.tokens.size())));
  }

  // Logit rows per piece, filled step by step, concatenated at the end in piece order.
  std::vector<std::vector<float>> piece_logits(pieces.size());
  const size_t V = c.vocab_size;
  size_t done = 0;  // tokens of each piece already run (pieces advance in lockstep)
  for (;;) {
    std::vector<Row> rows;
    std::vector<int32_t> out_rows;
    std::vector<size_t> out_piece;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const ForwardPiece& p = pieces[i];
      if (done >= p.tokens.size()) continue;
      const size_t n = std::min(p.tokens.size() - done, static_cast<size_t>(opt.max_step_tokens));
      const int base = cache.length(p.sequence);
      for (size_t j = 0; j < n; ++j) {
        const bool last = done + j + 1 == p.tokens.size();
        if (p.all_logits || last) {
          out_rows.push_back(static_cast<int32_t>(rows.size()));
          out_piece.push_back(i);
        }
        rows.push_back({p.tokens[done + j], p.sequence, base + static_cast<int32_t>(j)});
      }
    }
    if (rows.empty()) break;
    std::vector<float> step_logits(out_rows.size() * V);
    GPTOSS_RETURN_IF_ERROR(step(rows, out_rows, cache, step_logits.data()));
    for (size_t r = 0; r < out_rows.size(); ++r) {
      auto& dst = piece_logits[out_piece[r]];
      dst.insert(dst.end(), step_logits.begin() + r * V, step_logits.begin() + (r + 1) * V);
    }
    for (const ForwardPiece& p : pieces) {
      if (done < p.tokens.size()) {
        cache.advance(p.sequence,
                      static_cast<int>(std::min(p.tokens.size() - done, static_cast<size_t>(opt.max_step_tokens))));
      }
    }
    done += opt.max_step_tokens;
  }
  for (auto& pl : piece_logits) logits->insert(logits->end(), pl.begin(), pl.end());
  return Status::ok();
}

Status Model::step(const std::vector<Row>& rows, const std::vector<int32_t>& out_rows, KvCache& cache,
                   float* logits) {
  const ModelConfig& c = files_.config;
  const int T = static_cast<int>(rows.size());
  const int R = static_cast<int>(out_rows.size());
  GPTOSS_RETURN_IF_ERROR(reserve(T, R));
  std::vector<uint32_t> tokens(T);
  std::vector<int32_t> slots(T), positions(T);
  for (int t = 0; t < T; ++t) {
    tokens[t] = rows[t].token;
    slots[t] = rows[t].slot;
    positions[t] = rows[t].position;
  }
  const int H = c.hidden_size, E = c.num_experts, K = c.experts_per_token;
  const RopeTable rope{inv_freq_, concentration_};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Backend& be = backend_;
  float* x = x_.as<float>();
  float* xn = xn_.as<float>();
  float* tmp = tmp_.as<float>();

  GPTOSS_RETURN_IF_ERROR(cache.sync_page_table(be));
  be.f32_embed(weights_.embedding, tokens, x);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = weights_.layers[l];
    const KvLayer& kv = cache.layer(l);
    // Attention branch.
    be.f32_rmsnorm(x, T, L.attn_norm, c.rms_norm_eps, xn);
    const Backend::MatmulOut qkv[] = {
        {&L.q, &L.q_bias, q_.as<float>()}, {&L.k, &L.k_bias, k_.as<float>()}, {&L.v, &L.v_bias, v_.as<float>()}};
    be.f32_matmuls(xn, T, qkv);
    be.f32_rope_yarn(q_.as<float>(), T, c.num_heads, c.head_dim, positions, rope);
    be.f32_rope_yarn(k_.as<float>(), T, c.num_kv_heads, c.head_dim, positions, rope);
    be.f32_kv_store(kv, k_.as<float>(), v_.as<float>(), T, slots, positions);
    be.f32_sdpa_sink_window(q_.as<float>(), T, c.num_heads, kv, slots, positions, L.sinks,
                            L.sliding ? c.sliding_window : 0, scale, attn_.as<float>());
    be.f32_matmul(attn_.as<float>(), T, L.o, &L.o_bias, tmp);
    be.f32_add(x, tmp, static_cast<size_t>(T) * H);
    // MoE branch.
    be.f32_rmsnorm(x, T, L.mlp_norm, c.rms_norm_eps, xn);
    be.f32_matmul(xn, T, L.router, &L.router_bias, router_.as<float>());
    be.f32_topk_softmax(router_.as<float>(), T, E, K, idx_.as<int32_t>(), route_w_.as<float>());
    be.f32_mxfp4w_moe_matmul_swiglu(xn, T, K, idx_.as<int32_t>(), L.mlp1, L.mlp1_bias, c.swiglu_limit,
                                    c.swiglu_alpha, h_.as<float>());
    be.f32_mxfp4w_moe_matmul_accumulate(h_.as<float>(), T, K, idx_.as<int32_t>(), route_w_.as<float>(),
                                        L.mlp2, L.mlp2_bias, tmp);
    be.f32_add(x, tmp, static_cast<size_t>(T) * H);
  }
  be.f32_gather_rows(x, H, out_rows, gathered_.as<float>());
  be.f32_rmsnorm(gathered_.as<float>(), R, weights_.final_norm, c.rms_norm_eps, xn_.as<float>());
  be.f32_matmul(xn_.as<float>(), R, weights_.unembedding, nullptr, logits_.as<float>());
  GPTOSS_RETURN_IF_ERROR(be.sync());
  return be.download(logits_.data, static_cast<size_t>(R) * c.vocab_size * sizeof(float), logits);
}

}  // namespace gptoss
