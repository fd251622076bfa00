// gptoss bench MODEL: prefill and decode throughput in llama-bench's terms. pp<P> is one sequence
// prefilling P random tokens in one forward call; tg<N> is N tokens decoded one forward call at a
// time from an empty context. Each test runs -r times after a short warm-up; t/s is the mean of the
// repetitions' rates, ± their standard deviation (as llama-bench reports).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_session.h"
#include "cli/commands.h"
#include "engine/model_runner.h"
#include "model/model_files.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss bench MODEL [-p 512] [-n 128] [-r 5] [--device D] [--threads N] [--dense-weights S] [--json]\n"
    "  MODEL          model directory, weights file, or hub id (pulled if needed with --yes)\n"
    "  -p N           prompt tokens of the prefill test ppN (0 skips it; default 512)\n"
    "  -n N           tokens of the decode test tgN (0 skips it; default 128)\n"
    "  -r N           repetitions of each test (default 5)\n"
    "  --device D     auto (default: cuda when a GPU is usable, else cpu-fast), cpu, cpu-fast or cuda\n"
    "  --threads N    cpu threads (default: one per hardware thread)\n"
    "  --dense-weights S  bf16 (default) or q8: attention and unembedding as Q8_0 blocks (cpu, cpu-fast)\n"
    "  --json         one JSON object (prefill_tokens_per_s, decode_tokens_per_s, ...)\n"
    "  --yes          download MODEL without asking\n";

struct Stat {
  double mean = 0, stddev = 0;
};

Stat stats(const std::vector<double>& rates) {
  Stat s;
  if (rates.empty()) return s;
  for (double r : rates) s.mean += r;
  s.mean /= static_cast<double>(rates.size());
  if (rates.size() > 1) {
    double v = 0;
    for (double r : rates) v += (r - s.mean) * (r - s.mean);
    s.stddev = std::sqrt(v / static_cast<double>(rates.size() - 1));
  }
  return s;
}

std::string human_params(uint64_t n) {
  if (n >= 1000000000ull) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1000000ull) return fmt::format("{:.2f} M", n / 1e6);
  return fmt::format("{:.2f} K", n / 1e3);
}

std::string human_size(uint64_t bytes) {
  const double gib = bytes / 1073741824.0;
  if (gib >= 1) return fmt::format("{:.2f} GiB", gib);
  return fmt::format("{:.2f} MiB", bytes / 1048576.0);
}

using Clock = std::chrono::steady_clock;

// One repetition of ppP: seconds for one forward call over P tokens of a fresh sequence.
Expected<double> run_prefill(engine::Runner& runner, const std::vector<uint32_t>& tokens) {
  GPTOSS_ASSIGN_OR_RETURN(int seq, runner.new_sequence());
  std::vector<float> logits;
  const auto t0 = Clock::now();
  Status st = runner.forward({{seq, tokens}}, &logits);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  runner.free_sequence(seq);
  GPTOSS_RETURN_IF_ERROR(st);
  return s;
}

// One repetition of tgN: seconds for N single-token forward calls on a fresh sequence.
Expected<double> run_decode(engine::Runner& runner, const std::vector<uint32_t>& tokens) {
  GPTOSS_ASSIGN_OR_RETURN(int seq, runner.new_sequence());
  std::vector<float> logits;
  Status st;
  const auto t0 = Clock::now();
  for (uint32_t t : tokens) {
    st = runner.forward({{seq, {t}}}, &logits);
    if (!st) break;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  runner.free_sequence(seq);
  GPTOSS_RETURN_IF_ERROR(st);
  return s;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--json", "--yes", "--help", "-h"}, {"-p", "-n", "-r", "--device", "--threads", "--dense-weights"}};
  auto args = Args::parse(argv, spec);
  if (!args) return fail("bench", args.status().message() + " (see gptoss bench --help)", 2);
  if (args->has("--help") || args->has("-h")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (args->positional().size() != 1) return fail("bench", "expected one MODEL (see gptoss bench --help)", 2);
  auto n_prompt = args->get_int("-p", 512);
  auto n_gen = args->get_int("-n", 128);
  auto reps = args->get_int("-r", 5);
  auto threads = args->get_int("--threads", 0);
  for (const auto* v : {&n_prompt, &n_gen, &reps, &threads})
    if (!*v) return fail("bench", v->status().message(), 2);
  if (*n_prompt < 0 || *n_gen < 0 || *n_prompt + *n_gen == 0 || *n_prompt > 1000000 || *n_gen > 1000000)
    return fail("bench", "-p and -n take token counts >= 0 (not both 0)", 2);
  if (*reps < 1 || *reps > 1000) return fail("bench", "-r takes a number from 1 to 1000", 2);
  if (*threads < 0 || *threads > 1024) return fail("bench", "--threads must be in [0, 1024]", 2);

  auto dir = resolve_model_arg(args->positional()[0], *args);
  if (!dir) return fail("bench", dir.status().message());
  OpenOptions oo;
  oo.validate_tensors = false;  // load_runner validates
  auto files = open_model_dir(*dir, oo);
  if (!files) return fail("bench", files.status().message());
  const WeightSummary w = summarize_weights(files->tensors.tensors(), files->config, files->layout);

  engine::LoadOptions lo;
  lo.device = args->get_or("--device", "auto");
  lo.threads = static_cast<int>(*threads);
  auto dense = parse_dense_weights(args->get_or("--dense-weights", "bf16"));
  if (!dense) return fail("bench", dense.status().message(), 2);
  lo.dense_weights = *dense;
  lo.max_sequences = 1;
  lo.context = static_cast<int>(std::max<long long>(16, *n_prompt + *n_gen + 1));
  lo.max_step_tokens = static_cast<int>(std::max<long long>(1, *n_prompt));
  engine::LoadedModelInfo info;
  auto runner = engine::load_runner(*dir, lo, &info);
  if (!runner) return fail("bench", runner.status().message());
  engine::Runner& r = **runner;
  if (r.context_length() < *n_prompt + *n_gen)
    return fail("bench", fmt::format("-p {} + -n {} exceeds the model's context of {} positions", *n_prompt,
                                     *n_gen, r.context_length()), 2);

  // Random ordinary tokens, as llama-bench uses; the same every run.
  std::mt19937 rng(1234);
  const uint32_t vocab = static_cast<uint32_t>(std::min(r.vocab_size(), 199998));
  std::uniform_int_distribution<uint32_t> pick(0, vocab - 1);
  auto random_tokens = [&](long long n) {
    std::vector<uint32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = pick(rng);
    return t;
  };

  // Warm-up: touch the weights and let the backend set up its buffers.
  {
    auto warm = run_prefill(r, random_tokens(std::min<long long>(std::max<long long>(*n_prompt, 1), 16)));
    if (!warm) return fail("bench", warm.status().message());
    auto warm2 = run_decode(r, random_tokens(2));
    if (!warm2) return fail("bench", warm2.status().message());
  }
  std::vector<double> pp_rates, tg_rates, pp_secs, tg_secs;
  for (long long i = 0; i < *reps && *n_prompt > 0; ++i) {
    auto s = run_prefill(r, random_tokens(*n_prompt));
    if (!s) return fail("bench", s.status().message());
    pp_secs.push_back(*s);
    pp_rates.push_back(static_cast<double>(*n_prompt) / *s);
  }
  for (long long i = 0; i < *reps && *n_gen > 0; ++i) {
    auto s = run_decode(r, random_tokens(*n_gen));
    if (!s) return fail("bench", s.status().message());
    tg_secs.push_back(*s);
    tg_rates.push_back(static_cast<double>(*n_gen) / *s);
  }
  const Stat pp = stats(pp_rates), tg = stats(tg_rates);
  const int nthreads = *threads > 0 ? static_cast<int>(*threads)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string backend = info.device;
  std::transform(backend.begin(), backend.end(), backend.begin(), ::toupper);
  // --dense-weights q8: the attention and unembedding matrices are Q8_0 blocks in memory.
  const engine::LoadedModelInfo& li = info;
  const uint64_t size_bytes = li.q8.converted ? w.bytes_total - (li.q8.attention.bytes_before + li.q8.unembedding.bytes_before) +
                                                    li.q8.attention.bytes_after + li.q8.unembedding.bytes_after
                                              : w.bytes_total;
  const std::string model_name = "gpt-oss " + human_params(w.parameters) + (li.q8.converted ? " MXFP4/Q8_0" : " MXFP4");

  if (args->has("--json")) {
    nlohmann::json j = {{"model", model_name},
                        {"model_dir", info.dir},
                        {"size_bytes", size_bytes},
                        {"dense_weights", li.q8.converted ? "q8" : "bf16"},
                        {"params", w.parameters},
                        {"backend", info.device},
                        {"threads", nthreads},
                        {"n_prompt", *n_prompt},
                        {"n_gen", *n_gen},
                        {"reps", *reps},
                        {"load_seconds", info.load_seconds}};
    if (*n_prompt > 0) {
      j["prefill_tokens_per_s"] = pp.mean;
      j["prefill_tokens_per_s_stddev"] = pp.stddev;
      j["prefill_seconds"] = pp_secs;
    }
    if (*n_gen > 0) {
      j["decode_tokens_per_s"] = tg.mean;
      j["decode_tokens_per_s_stddev"] = tg.stddev;
      j["decode_seconds"] = tg_secs;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  const std::string size = human_size(size_bytes), params = human_params(w.parameters);
  // fmt pads by display width, so "±" does not shift the columns.
  fmt::print("| {:<24} | {:>10} | {:>10} | {:<7} | {:>7} | {:>13} | {:>20} |\n", "model", "size", "params",
             "backend", "threads", "test", "t/s");
  fmt::print("| {:-<24} | {:->9}: | {:->9}: | {:-<7} | {:->6}: | {:->12}: | {:->19}: |\n", "", "", "", "", "",
             "", "");
  auto row = [&](const std::string& test, const Stat& s) {
    fmt::print("| {:<24} | {:>10} | {:>10} | {:<7} | {:>7} | {:>13} | {:>20} |\n", model_name, size, params,
               backend, nthreads, test, fmt::format("{:.2f} ± {:.2f}", s.mean, s.stddev));
  };
  if (*n_prompt > 0) row(fmt::format("pp{}", *n_prompt), pp);
  if (*n_gen > 0) row(fmt::format("tg{}", *n_gen), tg);
  return 0;
}

}  // namespace gptoss::cli
