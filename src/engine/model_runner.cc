#include "engine/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "engine/memory_plan.h"
#include "model/forward.h"
#include "model/model_files.h"
#ifdef GPTOSS_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#endif

namespace gptoss::engine {
namespace {

class ModelRunner final : public Runner {
 public:
  ModelRunner(std::unique_ptr<Backend> backend, std::unique_ptr<Model> model, KvCache cache, int ctx)
      : backend_(std::move(backend)), model_(std::move(model)), cache_(std::move(cache)), ctx_(ctx) {}
  ~ModelRunner() override {
    // The model and cache hold backend memory: release them before the backend (the decode engine,
    // which reads both, first).
#ifdef GPTOSS_HAVE_CUDA
    decode_.reset();
#endif
    cache_.reset();
    model_.reset();
  }

  int vocab_size() const override { return model_->config().vocab_size; }
  int context_length() const override { return ctx_; }
  Expected<int> new_sequence() override { return cache_->new_sequence(); }
  void free_sequence(int sequence) override { cache_->free_sequence(sequence); }
  bool can_start(int tokens) const override { return cache_->can_start(tokens); }
  Status can_ever_fit(int tokens) const override { return cache_->can_ever_fit(tokens); }
  Expected<int> start_sequence(int tokens) override { return cache_->new_sequence(tokens); }

#ifdef GPTOSS_HAVE_CUDA
  // Decode steps (every piece one token) on the cuda device go through the fused CUDA-graph engine,
  // which reads and writes the same KvCache as the op path (prefill, mixed steps).
  Status enable_graph_decode(int max_sequences) {
    const ModelConfig& c = model_->config();
    cuda::DecodeOptions opt;
    opt.max_batch = max_sequences;
    opt.max_context = cache_->options().max_context;  // the cache's layout (ctx_ may be the smaller pool)
    for (int l = 0; l < c.num_layers; ++l) {
      const KvLayer& kv = cache_->layer(l);
      opt.k_layers.push_back(kv.k.as<float>());
      opt.v_layers.push_back(kv.v.as<float>());
      opt.capacities.push_back(kv.capacity);
      opt.kv_pages.push_back({kv.page_table_device, kv.page_size, kv.pages_per_slot});
    }
    GPTOSS_ASSIGN_OR_RETURN(decode_, cuda::DecodeEngine::create(c, model_->weights(), opt));
    return Status::ok();
  }

  // Checks a decode step and sets tok_, pos_, slot_ (reserving each sequence's next position).
  Status graph_inputs(const std::vector<BatchPiece>& pieces) {
    const size_t n = pieces.size();
    tok_.resize(n);
    pos_.resize(n);
    slot_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const int s = pieces[i].sequence;
      if (!cache_->in_use(s)) return Error("forward: sequence {} is not in use", s);
      for (size_t j = 0; j < i; ++j) {
        if (slot_[j] == s) return Error("forward: sequence {} appears twice in one step", s);
      }
      if (cache_->length(s) >= ctx_) return Error("forward: sequence {} is full ({} positions)", s, ctx_);
      GPTOSS_RETURN_IF_ERROR(cache_->reserve(s, cache_->length(s) + 1));
      tok_[i] = static_cast<int32_t>(pieces[i].tokens[0]);
      pos_[i] = cache_->length(s);
      slot_[i] = s;
    }
    return cache_->sync_page_table(*backend_);  // complete on return (cuda upload)
  }

  Status graph_decode(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) {
    GPTOSS_RETURN_IF_ERROR(graph_inputs(pieces));
    logits->resize(pieces.size() * static_cast<size_t>(vocab_size()));
    GPTOSS_RETURN_IF_ERROR(decode_->step(tok_, pos_, slot_, logits->data(), nullptr, /*use_graph=*/true));
    for (int s : slot_) cache_->advance(s, 1);
    return Status::ok();
  }

  // A decode step whose kGreedy pieces take the engine's argmax (only the ids cross to the host) and
  // whose kLogits pieces get their rows copied into pinned memory, only those rows.
  Status graph_decode_step(const std::vector<BatchPiece>& pieces, const std::vector<PieceOutput>& want,
                           StepOutput* out) {
    GPTOSS_RETURN_IF_ERROR(graph_inputs(pieces));
    const size_t n = pieces.size();
    want_rows_.resize(n);
    for (size_t i = 0; i < n; ++i) want_rows_[i] = want[i] == PieceOutput::kLogits ? 1 : 0;
    out->tokens.resize(n);
    out->rows.resize(n);
    GPTOSS_RETURN_IF_ERROR(
        decode_->step_rows(tok_, pos_, slot_, want_rows_, out->rows.data(), out->tokens.data(), /*use_graph=*/true));
    for (size_t i = 0; i < n; ++i) {
      if (want[i] != PieceOutput::kGreedy) out->tokens[i] = -1;
    }
    for (int s : slot_) cache_->advance(s, 1);
    return Status::ok();
  }
#endif

  static bool decode_only(const std::vector<BatchPiece>& pieces) {
    return !pieces.empty() &&
           std::all_of(pieces.begin(), pieces.end(), [](const BatchPiece& p) { return p.tokens.size() == 1; });
  }

  Status forward_step(const std::vector<BatchPiece>& pieces, const std::vector<PieceOutput>& want,
                      StepOutput* out) override {
#ifdef GPTOSS_HAVE_CUDA
    if (decode_ && decode_only(pieces)) {
      if (want.size() != pieces.size()) return Error("forward_step: {} outputs for {} pieces", want.size(), pieces.size());
      return graph_decode_step(pieces, want, out);
    }
#endif
    return Runner::forward_step(pieces, want, out);
  }

  // One forward step of `tokens` tokens on a scratch sequence, the logits dropped: grows what the
  // prefill path keeps between steps (the model's activations, the backend's scratch, its cuBLAS
  // handle and workspace) to the largest step and loads the kernels it launches, so that the first
  // request's prefill runs as fast as the later ones. The sequence is freed again. A KV page pool
  // smaller than the step (--kv-tokens) gets a shorter warm-up; none below the prefill path's 8 rows.
  Status warm_up(int tokens) {
    while (tokens >= 8 && !cache_->can_start(tokens)) tokens /= 2;
    if (tokens < 8) return Status::ok();
    GPTOSS_ASSIGN_OR_RETURN(int seq, cache_->new_sequence());
    BatchPiece p{seq, std::vector<uint32_t>(static_cast<size_t>(tokens))};
    // Spread over the vocabulary so that the router spreads the tokens over the experts.
    for (int i = 0; i < tokens; ++i) p.tokens[i] = static_cast<uint32_t>((static_cast<uint64_t>(i) * 7919 + 11) % static_cast<uint64_t>(vocab_size()));
    std::vector<float> logits;
    const Status st = forward({p}, &logits);
    cache_->free_sequence(seq);
    return st;
  }

  Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) override {
#ifdef GPTOSS_HAVE_CUDA
    if (decode_ && decode_only(pieces)) return graph_decode(pieces, logits);
#endif
    std::vector<ForwardPiece> fp(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      fp[i].sequence = pieces[i].sequence;
      fp[i].tokens = pieces[i].tokens;
      fp[i].all_logits = false;
    }
    logits->clear();
    return model_->forward(fp, *cache_, logits);
  }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::optional<KvCache> cache_;
  int ctx_;
#ifdef GPTOSS_HAVE_CUDA
  std::unique_ptr<cuda::DecodeEngine> decode_;
  std::vector<int32_t> tok_, pos_, slot_;
  std::vector<uint8_t> want_rows_;
#endif
};

// 0: off; 1: on where the engine supports the model (else the op path); 2: on, and an unsupported
// model is an error (GPTOSS_CUDA_GRAPH_DECODE=1, for tests that must exercise the engine).
[[maybe_unused]] int graph_decode_mode(const LoadOptions& options) {
  const char* env = std::getenv("GPTOSS_CUDA_GRAPH_DECODE");
  if (env != nullptr && *env != '\0') return std::string_view(env) == "0" ? 0 : 2;
  return options.cuda_graph_decode ? 1 : 0;
}

}  // namespace

Expected<std::unique_ptr<Backend>> make_backend(const std::string& device, int threads) {
  if (device == "cpu") return make_cpu_backend(threads);
  if (device == "cpu-fast") return make_cpu_fast_backend(threads);
  if (device == "cuda") {
#ifdef GPTOSS_HAVE_CUDA
    return make_cuda_backend(0);
#else
    return Error("--device cuda: this build has no CUDA backend (rebuild with nvcc installed)");
#endif
  }
  return Error("--device: unknown device '{}' (use cpu, cpu-fast or cuda)", device);
}


std::string default_device() {
#ifdef GPTOSS_HAVE_CUDA
  if (cuda_device_count() > 0) return "cuda";
#endif
  // The SIMD backend (same decoded weights, f32 sums in another order) when its self-check against
  // the exact kernels passes on this machine; "cpu" stays the exact path on request.
  return cpu_fast_self_check() ? "cpu-fast" : "cpu";
}

KvCacheOptions kv_cache_options(const LoadOptions& options, const ModelConfig& cfg) {
  KvCacheOptions kv;
  kv.max_sequences = std::max(1, options.max_sequences);
  kv.max_context = std::clamp(options.context, 16, std::max(16, cfg.max_position_embeddings));
  kv.max_step_tokens = std::clamp(options.max_step_tokens, 1, kv.max_context);
  // Full-attention layers in pages of 16 positions, taken as sequences grow (model/kv_cache.h).
  kv.page_size = kDefaultKvPageSize;
  kv.pool_tokens = std::max<int64_t>(0, options.kv_tokens);
  return kv;
}

Expected<std::shared_ptr<Runner>> load_runner(const std::string& model_dir, const LoadOptions& options,
                                              LoadedModelInfo* info) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string device = options.device == "auto" ? default_device() : options.device;
  GPTOSS_RETURN_IF_ERROR(check_dense_weights_device(options.dense_weights, device));
  GPTOSS_ASSIGN_OR_RETURN(auto backend, make_backend(device, options.threads));
  GPTOSS_ASSIGN_OR_RETURN(ModelFiles files, open_model_dir(model_dir));
  // Before the weights are bound (a device copies them) and before the KV cache is allocated.
  GPTOSS_RETURN_IF_ERROR(check_memory_fits(options, files.config, device, files.tensors.total_bytes()));
  const std::string layout = layout_name(files.layout);
  const std::string dir = files.dir;
  BindOptions bind;
  bind.dense = options.dense_weights;
  bind.threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  GPTOSS_ASSIGN_OR_RETURN(auto model, Model::create(std::move(files), *backend, bind));
  const ModelConfig& cfg = model->config();
  const KvCacheOptions kv = kv_cache_options(options, cfg);
  GPTOSS_ASSIGN_OR_RETURN(KvCache cache, model->new_cache(kv));
  if (info) {
    info->dir = dir;
    info->layout = layout;
    info->device = backend->name();
    info->config = cfg;
    info->kv_bytes = cache.bytes();
    info->q8 = model->q8_report();
    info->load_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // A pool smaller than the context (--kv-tokens) is the most one sequence can hold: the context
  // requests are checked against (and what one without max_tokens is promised).
  const int64_t pool = cache.paged() ? cache.total_pages() * kv.page_size : int64_t{kv.max_context};
  const int ctx = static_cast<int>(std::min<int64_t>(kv.max_context, pool));
  auto runner = std::make_shared<ModelRunner>(std::move(backend), std::move(model), std::move(cache), ctx);
#ifdef GPTOSS_HAVE_CUDA
  if (const int mode = graph_decode_mode(options); device == "cuda" && mode > 0) {
    // Models the fused kernels do not cover (head_dim other than 64, non-bf16 dense weights...)
    // decode on the op path unless the engine was asked for explicitly.
    const Status st = runner->enable_graph_decode(kv.max_sequences);
    if (!st.is_ok() && mode == 2) return st;
  }
  if (device == "cuda" && options.prefill_warm_up) {
    GPTOSS_RETURN_IF_ERROR(runner->warm_up(std::min(kv.max_step_tokens, ctx)));  // within a --kv-tokens pool
    if (info) info->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
#endif
  return std::shared_ptr<Runner>(std::move(runner));
}

}  // namespace gptoss::engine
