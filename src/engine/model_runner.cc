#include "engine/model_runner.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu_fast/cpu_fast_backend.h"
#include "engine/memory_plan.h"
#include "model/forward.h"
#include "model/model_files.h"
#ifdef GPTOSS_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace gptoss::engine {
namespace {

class ModelRunner final : public Runner {
 public:
  ModelRunner(std::unique_ptr<Backend> backend, std::unique_ptr<Model> model, KvCache cache, int ctx)
      : backend_(std::move(backend)), model_(std::move(model)), cache_(std::move(cache)), ctx_(ctx) {}
  ~ModelRunner() override {
    // The model and cache hold backend memory: release them before the backend.
    cache_.reset();
    model_.reset();
  }

  int vocab_size() const override { return model_->config().vocab_size; }
  int context_length() const override { return ctx_; }
  Expected<int> new_sequence() override { return cache_->new_sequence(); }
  void free_sequence(int sequence) override { cache_->free_sequence(sequence); }

  Status forward(const std::vector<BatchPiece>& pieces, std::vector<float>* logits) override {
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
};

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
  return kv;
}

Expected<std::shared_ptr<Runner>> load_runner(const std::string& model_dir, const LoadOptions& options,
                                              LoadedModelInfo* info) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string device = options.device == "auto" ? default_device() : options.device;
  GPTOSS_ASSIGN_OR_RETURN(auto backend, make_backend(device, options.threads));
  GPTOSS_ASSIGN_OR_RETURN(ModelFiles files, open_model_dir(model_dir));
  // Before the weights are bound (a device copies them) and before the KV cache is allocated.
  GPTOSS_RETURN_IF_ERROR(check_memory_fits(options, files.config, device));
  const std::string layout = layout_name(files.layout);
  const std::string dir = files.dir;
  GPTOSS_ASSIGN_OR_RETURN(auto model, Model::create(std::move(files), *backend));
  const ModelConfig& cfg = model->config();
  const KvCacheOptions kv = kv_cache_options(options, cfg);
  GPTOSS_ASSIGN_OR_RETURN(KvCache cache, model->new_cache(kv));
  if (info) {
    info->dir = dir;
    info->layout = layout;
    info->device = backend->name();
    info->config = cfg;
    info->kv_bytes = cache.bytes();
    info->load_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return std::shared_ptr<Runner>(
      std::make_shared<ModelRunner>(std::move(backend), std::move(model), std::move(cache), kv.max_context));
}

}  // namespace gptoss::engine
