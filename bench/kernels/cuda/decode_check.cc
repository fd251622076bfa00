// Whole-model agreement on the GPU machine: the exact CPU forward pass (model/forward.cc on the cpu
// backend) against (a) the same forward pass on the cuda backend and (b) the fused, graph-captured
// decode engine fed one token per step. Prints the max relative error (max |a - b| / max |cpu| over
// all logits of a row, worst row) and how many rows agree on the argmax. Exits 1 when an error
// exceeds --tol or any argmax differs.
//   gptoss_cuda_decode_check MODEL_DIR --tokens 1,2,3 [--tol 1e-4] [--threads N] [--batch 8,16,64 --seqs D]
// --batch: also decode batches of n sequences per step (graph), slot b feeding sequence b % D
// (sequence j's tokens are (tokens[i] + 7919 j) mod vocab, each checked against its own CPU forward
// pass), with the MoE layers on the per-slot GEMVs and on the grouped GEMM in tiles of 8, 16 and 64
// slots, the latter with the dense projections on the GEMM too (DecodeOptions::moe_gemm_min_batch,
// moe_gemm_tile_slots, dense_gemm_min_batch).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/decode_engine.h"
#include "backend/cuda/kernels.h"
#include "model/forward.h"
#include "model/model_files.h"

using namespace gptoss;

namespace {

std::vector<uint32_t> parse_ids(const std::string& s) {
  std::vector<uint32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    ids.push_back(static_cast<uint32_t>(std::strtoul(s.substr(i, j - i).c_str(), nullptr, 10)));
    i = j + 1;
  }
  return ids;
}

Expected<std::vector<float>> run_forward(const std::string& dir, Backend& be, const std::vector<uint32_t>& ids) {
  GPTOSS_ASSIGN_OR_RETURN(ModelFiles files, open_model_dir(dir));
  GPTOSS_ASSIGN_OR_RETURN(auto model, Model::create(std::move(files), be));
  KvCacheOptions ko;
  ko.max_context = static_cast<int>(ids.size()) + 8;
  GPTOSS_ASSIGN_OR_RETURN(KvCache cache, model->new_cache(ko));
  GPTOSS_ASSIGN_OR_RETURN(int seq, cache.new_sequence());
  ForwardPiece piece{seq, ids, true};
  std::vector<float> logits;
  GPTOSS_RETURN_IF_ERROR(model->forward({&piece, 1}, cache, &logits));
  return logits;
}

struct Agreement {
  double worst_rel = 0;
  int argmax_same = 0;
  int rows = 0;
};

Agreement compare(const std::vector<float>& ref, const std::vector<float>& got, int V) {
  Agreement a;
  a.rows = static_cast<int>(ref.size() / V);
  for (int r = 0; r < a.rows; ++r) {
    double maxd = 0, maxr = 0;
    int ar = 0, ag = 0;
    for (int i = 0; i < V; ++i) {
      const float x = ref[size_t(r) * V + i], y = got[size_t(r) * V + i];
      maxd = std::fmax(maxd, std::fabs(double(x) - y));
      if (!std::isfinite(y)) maxd = INFINITY;
      maxr = std::fmax(maxr, std::fabs(double(x)));
      if (x > ref[size_t(r) * V + ar]) ar = i;
      if (y > got[size_t(r) * V + ag]) ag = i;
    }
    a.worst_rel = std::fmax(a.worst_rel, maxd / std::fmax(maxr, 1e-30));
    a.argmax_same += ar == ag;
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::string(argv[2]) != "--tokens") {
    std::fprintf(stderr,
                 "usage: gptoss_cuda_decode_check MODEL_DIR --tokens 1,2,3 [--tol X] [--threads N] [--shapes G,GU,DN]\n"
                 "  [--nsplit FULL,SLIDING]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const auto ids = parse_ids(argv[3]);
  double tol = 1e-4;
  int threads = 0, seqs = 1, nsplit[2] = {0, 0};
  std::vector<uint32_t> batches;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--tol") tol = std::atof(argv[i + 1]);
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--batch") batches = parse_ids(argv[i + 1]);
    if (std::string(argv[i]) == "--seqs") seqs = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--nsplit") {  // the decode engine's attention splits: FULL,SLIDING
      if (std::sscanf(argv[i + 1], "%d,%d", &nsplit[0], &nsplit[1]) != 2) {
        std::fprintf(stderr, "--nsplit wants FULL,SLIDING\n");
        return 2;
      }
      std::printf("attention splits: %d full, %d sliding\n", nsplit[0], nsplit[1]);
    }
    if (std::string(argv[i]) == "--shapes") {  // kernel shapes (kernels.h: set_*_variant); R, A optional
      int g = 0, gu = 0, dn = 0, r = cuda::kRouterDefault, a = cuda::kAttentionDefault;
      if (std::sscanf(argv[i + 1], "%d,%d,%d,%d,%d", &g, &gu, &dn, &r, &a) < 3) {
        std::fprintf(stderr, "--shapes wants G,GU,DN[,R[,A]]\n");
        return 2;
      }
      cuda::set_gemv_variant(g);
      cuda::set_moe_variant(gu, dn);
      cuda::set_router_variant(r);
      cuda::set_attention_variant(a);
      std::printf("kernel shapes: gemv %d, gate_up %d, down %d, router %d, attention %d\n", g, gu, dn, r, a);
    }
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.message().c_str());
    return 2;
  };
  auto cpu = make_cpu_backend(threads);
  auto ref = run_forward(dir, *cpu, ids);
  if (!ref) return fail(ref.status());
  auto gpu = make_cuda_backend(0);
  if (!gpu) return fail(gpu.status());
  auto cm = run_forward(dir, **gpu, ids);
  if (!cm) return fail(cm.status());

  auto files = open_model_dir(dir);
  if (!files) return fail(files.status());
  const int V = files->config.vocab_size;
  auto weights = bind_weights(*files, **gpu);
  if (!weights) return fail(weights.status());
  cuda::DecodeOptions opt;
  opt.max_batch = 2;
  opt.max_context = static_cast<int>(ids.size()) + 8;
  opt.nsplit = nsplit[0], opt.nsplit_sliding = nsplit[1];
  auto eng = cuda::DecodeEngine::create(files->config, *weights, opt);
  if (!eng) return fail(eng.status());
  std::vector<float> dec(ids.size() * V), dec_eager(ids.size() * V);
  for (int pass = 0; pass < 2; ++pass) {  // graph, then eager launches into the other KV slot
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t tok = static_cast<int32_t>(ids[i]), pos = static_cast<int32_t>(i), slot = pass;
      auto st = (*eng)->step({&tok, 1}, {&pos, 1}, {&slot, 1}, (pass == 0 ? dec : dec_eager).data() + i * V, nullptr,
                             pass == 0);
      if (!st) return fail(st);
    }
  }
  const Agreement a = compare(*ref, *cm, V), b = compare(*ref, dec, V), e = compare(dec, dec_eager, V);
  std::printf("model %s, %zu tokens, vocab %d\n", dir.c_str(), ids.size(), V);
  std::printf("cuda backend (model/forward.cc) vs cpu: max rel err %.3e, argmax %d/%d\n", a.worst_rel, a.argmax_same,
              a.rows);
  std::printf("cuda decode engine (graph) vs cpu:      max rel err %.3e, argmax %d/%d\n", b.worst_rel, b.argmax_same,
              b.rows);
  std::printf("cuda decode engine eager vs graph:      max rel err %.3e, argmax %d/%d\n", e.worst_rel, e.argmax_same,
              e.rows);
  bool ok = a.worst_rel <= tol && b.worst_rel <= tol && a.argmax_same == a.rows && b.argmax_same == b.rows &&
            e.worst_rel == 0.0;
  if (!batches.empty()) {
    // CPU references of the D sequences (sequence 0 is `ids`, already computed).
    const size_t P = ids.size();
    std::vector<std::vector<uint32_t>> seq_ids(seqs, ids);
    std::vector<std::vector<float>> refs(seqs);
    refs[0] = *ref;
    for (int j = 1; j < seqs; ++j) {
      for (auto& t : seq_ids[j]) t = static_cast<uint32_t>((uint64_t(t) + 7919u * uint64_t(j)) % uint64_t(V));
      auto r = run_forward(dir, *cpu, seq_ids[j]);
      if (!r) return fail(r.status());
      refs[j] = std::move(*r);
    }
    for (uint32_t n : batches) {
      const char* names[4] = {"gemv", "gemm8", "gemm16", "gemm64"};
      for (int path = 0; path < 4; ++path) {  // GEMV MoE, then the grouped GEMM in tiles of 8, 16, 64 slots
        cuda::DecodeOptions bo;
        bo.max_batch = static_cast<int>(n);
        bo.max_context = static_cast<int>(P) + 8;
        bo.nsplit = nsplit[0], bo.nsplit_sliding = nsplit[1];
        bo.moe_gemm_min_batch = path == 0 ? 1 << 30 : 1;
        bo.moe_gemm_tile_slots = path == 0 ? 0 : path == 3 ? 64 : 4 << path;
        bo.dense_gemm_min_batch = path == 0 ? 1 << 30 : 1;  // the dense GEMMs along with the MoE GEMM
        auto be = cuda::DecodeEngine::create(files->config, *weights, bo);
        if (!be) return fail(be.status());
        std::vector<float> out(size_t(n) * P * V), step_logits(size_t(n) * V);
        std::vector<int32_t> tok(n), pos(n), slot(n);
        for (size_t i = 0; i < P; ++i) {
          for (uint32_t b = 0; b < n; ++b) {
            tok[b] = static_cast<int32_t>(seq_ids[b % seqs][i]), pos[b] = static_cast<int32_t>(i);
            slot[b] = static_cast<int32_t>(b);
          }
          auto st = (*be)->step(tok, pos, slot, step_logits.data(), nullptr, true);
          if (!st) return fail(st);
          for (uint32_t b = 0; b < n; ++b) {
            std::copy_n(step_logits.data() + size_t(b) * V, V, out.data() + (size_t(b) * P + i) * V);
          }
        }
        double worst = 0;
        int same = 0, rows = 0;
        for (uint32_t b = 0; b < n; ++b) {
          const std::vector<float> got(out.begin() + size_t(b) * P * V, out.begin() + size_t(b + 1) * P * V);
          const Agreement g = compare(refs[b % seqs], got, V);
          worst = std::fmax(worst, g.worst_rel);
          same += g.argmax_same;
          rows += g.rows;
        }
        std::printf("cuda decode engine batch %2u, moe %-6s vs cpu: max rel err %.3e, argmax %d/%d (%d sequences)\n",
                    n, names[path], worst, same, rows, seqs);
        ok = ok && worst <= tol && same == rows;
      }
    }
  }
  std::printf("decode check: %s (tol %.1e)\n", ok ? "ok" : "FAILED", tol);
  return ok ? 0 : 1;
}
