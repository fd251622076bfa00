// gptoss bench MODEL: prefill and decode throughput in llama-bench's terms. pp<P> is one sequence
// prefilling P random tokens in one forward call; tg<N> is N tokens decoded one forward call at a
// time from an empty context, each step asking the runner for the greedy token (on the cuda graph
// decode path only the id crosses to the host; --host-sampling copies the whole logits row instead,
// as llama-bench's decode does). Each test runs -r times after one untimed warm-up run as llama-bench
// does (the whole ppP once, one decoded token); t/s is the mean of the repetitions' rates, ± their
// standard deviation (as llama-bench reports).
//
// --parallel N1,N2,...: llama-batched-bench's table instead: for each N, N sequences of -p random
// prompt tokens each, -n tokens generated for each, through the continuous-batching engine that
// serve runs (engine/scheduler.h over the same runner; greedy sampling, no stop tokens). All N prompts
// go into one prefill step (the scheduler's prompt budget is set to N x P), so that every sequence
// decodes from the same step on and each later step decodes all N: S_TG is the N x (-n - 1) tokens
// of those steps over their time, T_PP the time until the first token of every sequence.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_session.h"
#include "cli/commands.h"
#include "engine/model_runner.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "model/model_files.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss bench MODEL [-p 512] [-n 128] [-r 5] [--parallel N,...] [--no-warmup] [--device D] [--threads N]\n"
    "                    [--dense-weights S] [--host-sampling] [--json]\n"
    "  MODEL          model directory, weights file, or hub id (pulled if needed with --yes)\n"
    "  -p N           prompt tokens of the prefill test ppN (0 skips it; default 512)\n"
    "  -n N           tokens of the decode test tgN (0 skips it; default 128)\n"
    "  -r N           repetitions of each test (default 5)\n"
    "  --parallel L   comma-separated sequence counts (like llama-batched-bench's -npl): for each N, N\n"
    "                 sequences of -p prompt tokens each generate -n tokens each at once through the\n"
    "                 serving engine; prints PP, TG, B, N_KV, T_PP, S_PP, T_TG, S_TG, T, S per N\n"
    "  --no-warmup    skip the untimed warm-up run before each test (llama-bench's --no-warmup)\n"
    "  --host-sampling  decode steps copy every logits row to the host and take the argmax there, instead\n"
    "                 of the greedy token computed on the device (cuda)\n"
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

// One repetition of tgN: seconds for N single-token forward calls on a fresh sequence, each asking
// for the greedy token (the logits row with host_sampling, its argmax taken as the sampler does).
Expected<double> run_decode(engine::Runner& runner, const std::vector<uint32_t>& tokens, bool host_sampling) {
  GPTOSS_ASSIGN_OR_RETURN(int seq, runner.new_sequence());
  engine::SamplingParams greedy;
  greedy.temperature = 0;
  engine::Sampler sampler(greedy, {});
  const std::vector<engine::PieceOutput> want = {host_sampling ? engine::PieceOutput::kLogits
                                                               : engine::PieceOutput::kGreedy};
  engine::StepOutput out;
  Status st;
  const auto t0 = Clock::now();
  for (uint32_t t : tokens) {
    st = runner.forward_step({{seq, {t}}}, want, &out);
    if (!st) break;
    if (out.tokens[0] < 0) sampler.sample(out.rows[0], runner.vocab_size());  // the host path's argmax
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  runner.free_sequence(seq);
  GPTOSS_RETURN_IF_ERROR(st);
  return s;
}

// One round of --parallel: N requests submitted together (Engine::submit_all), greedy, no stop
// tokens; times from the submission.
struct ParallelRound {
  double t_pp = 0;          // until every sequence has its first token (the prefill step)
  double t_tg = 0;          // from then until the last token
  double t_total = 0;
  uint64_t generated = 0;   // tokens generated, all sequences (N x n_gen when all went well)
  uint64_t tg_tokens = 0;   // of those, the tokens delivered after every sequence had its first
  std::vector<int> per_sequence;
};

Expected<ParallelRound> run_parallel(engine::Engine& eng, const std::vector<std::vector<uint32_t>>& prompts,
                                     int n_gen) {
  const int N = static_cast<int>(prompts.size());
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int first = 0, finished = 0;
    Clock::time_point t_first_all, t_last;
    std::vector<int> count;
    uint64_t tg_tokens = 0;
    std::string error;
  } st;
  st.count.assign(static_cast<size_t>(N), 0);
  std::vector<engine::GenerationRequest> reqs(static_cast<size_t>(N));
  std::vector<engine::TokenSink> sinks;
  for (int i = 0; i < N; ++i) {
    reqs[i].prompt = prompts[i];
    reqs[i].max_tokens = n_gen;
    reqs[i].sampling.temperature = 0;  // greedy: no sampling randomness in the timing
    // Called on the engine thread, in the order of the step's pieces (decoding sequences first).
    sinks.push_back([&st, i, N](const engine::TokenEvent& ev) {
      const auto now = Clock::now();
      std::lock_guard<std::mutex> lk(st.mu);
      if (ev.has_token) {
        if (st.count[i]++ == 0) {
          if (++st.first == N) st.t_first_all = now;
        } else if (st.first == N) {
          ++st.tg_tokens;
        }
        st.t_last = now;
      }
      if (ev.finished) {
        if (ev.reason == engine::FinishReason::kError && st.error.empty()) st.error = ev.error;
        ++st.finished;
        st.cv.notify_all();
      }
    });
  }
  const auto t0 = Clock::now();
  GPTOSS_RETURN_IF_ERROR(eng.submit_all(std::move(reqs), std::move(sinks)).status());
  std::unique_lock<std::mutex> lk(st.mu);
  st.cv.wait(lk, [&] { return st.finished == N; });
  if (!st.error.empty()) return Error("{}", st.error);
  ParallelRound r;
  r.per_sequence = st.count;
  for (int c : st.count) r.generated += static_cast<uint64_t>(c);
  if (st.first < N) return Error("only {} of {} sequences produced a token", st.first, N);
  r.tg_tokens = st.tg_tokens;
  r.t_pp = std::chrono::duration<double>(st.t_first_all - t0).count();
  r.t_tg = std::chrono::duration<double>(st.t_last - st.t_first_all).count();
  r.t_total = std::chrono::duration<double>(st.t_last - t0).count();
  return r;
}

Expected<std::vector<int>> parse_parallel(const std::string& list) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string item = list.substr(pos, comma - pos);
    char* end = nullptr;
    const long v = item.empty() ? 0 : std::strtol(item.c_str(), &end, 10);
    if (item.empty() || end == nullptr || *end != '\0' || v < 1 || v > 4096)
      return Error("--parallel takes sequence counts from 1 to 4096, comma-separated (got '{}')", list);
    out.push_back(static_cast<int>(v));
    pos = comma + 1;
  }
  return out;
}

// --parallel: one engine per N (max_running N, the prompt budget N x P so that all prompts fill one
// step), an untimed warm-up round generating 2 tokens (it also captures the decode graph of batch N)
// unless --no-warmup, then `reps` timed rounds; rates are the means of the rounds' rates.
int bench_parallel(const std::shared_ptr<engine::Runner>& runner, const engine::LoadedModelInfo& info,
                   const std::vector<int>& ns, int P, int G, int reps, bool warmup, bool json, bool host_sampling,
                   const std::function<std::vector<uint32_t>(long long)>& random_tokens) {
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    fmt::print("gptoss bench --parallel: {} on {}, greedy ({}), prompts of all sequences in one step, {} round(s)\n\n",
               info.dir, info.device, host_sampling ? "host sampling" : "device greedy", reps);
    fmt::print("| {:>6} | {:>6} | {:>4} | {:>6} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} |\n", "PP", "TG",
               "B", "N_KV", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s", "T s", "S t/s");
    fmt::print("|{:-<8}|{:-<8}|{:-<6}|{:-<8}|{:-<10}|{:-<10}|{:-<10}|{:-<10}|{:-<10}|{:-<10}|\n", "", "", "", "", "",
               "", "", "", "", "");
  }
  for (const int N : ns) {
    engine::SchedulerOptions so;
    so.max_running = N;
    so.max_queued = 0;
    so.prefill_chunk_tokens = N * P;
    so.device_greedy = !host_sampling;
    std::unique_ptr<engine::Engine> eng = engine::create_engine(runner, so);
    auto prompts = [&] {
      std::vector<std::vector<uint32_t>> v;
      for (int i = 0; i < N; ++i) v.push_back(random_tokens(P));
      return v;
    };
    if (warmup) {
      auto w = run_parallel(*eng, prompts(), 2);
      if (!w) return fail("bench", fmt::format("--parallel {}: {}", N, w.status().message()));
    }
    std::vector<double> pp_s, tg_s, all_s, pp_rate, tg_rate, all_rate;
    std::vector<uint64_t> tg_tokens, generated;
    std::vector<int> last_counts;
    for (int rep = 0; rep < reps; ++rep) {
      auto r = run_parallel(*eng, prompts(), G);
      if (!r) return fail("bench", fmt::format("--parallel {}: {}", N, r.status().message()));
      pp_s.push_back(r->t_pp);
      tg_s.push_back(r->t_tg);
      all_s.push_back(r->t_total);
      pp_rate.push_back(static_cast<double>(N) * P / r->t_pp);
      tg_rate.push_back(r->t_tg > 0 ? static_cast<double>(r->tg_tokens) / r->t_tg : 0.0);
      all_rate.push_back((static_cast<double>(N) * P + static_cast<double>(r->generated)) / r->t_total);
      tg_tokens.push_back(r->tg_tokens);
      generated.push_back(r->generated);
      last_counts = r->per_sequence;
    }
    const Stat pp = stats(pp_rate), tg = stats(tg_rate), all = stats(all_rate);
    const Stat tpp = stats(pp_s), ttg = stats(tg_s), tall = stats(all_s);
    const long long n_kv = static_cast<long long>(N) * (P + G);
    if (json) {
      rows.push_back({{"n_parallel", N},
                      {"n_prompt", P},
                      {"n_gen", G},
                      {"n_kv", n_kv},
                      {"prefill_seconds", pp_s},
                      {"prefill_tokens_per_s", pp.mean},
                      {"decode_seconds", tg_s},
                      {"decode_tokens_per_s", tg.mean},
                      {"decode_tokens_per_s_stddev", tg.stddev},
                      {"decode_tokens", tg_tokens},
                      {"generated_tokens", generated},
                      {"tokens_per_sequence", last_counts},
                      {"total_seconds", all_s},
                      {"total_tokens_per_s", all.mean}});
    } else {
      fmt::print("| {:>6} | {:>6} | {:>4} | {:>6} | {:>8.3f} | {:>8.2f} | {:>8.3f} | {:>8.2f} | {:>8.3f} | {:>8.2f} |\n",
                 P, G, N, n_kv, tpp.mean, pp.mean, ttg.mean, tg.mean, tall.mean, all.mean);
    }
  }
  if (json) {
    nlohmann::json j = {{"model_dir", info.dir},   {"backend", info.device}, {"n_prompt", P},
                        {"n_gen", G},             {"reps", reps},           {"warmup", warmup},
                        {"host_sampling", host_sampling},
                        {"load_seconds", info.load_seconds}, {"parallel", rows}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  ArgSpec spec{{"--json", "--yes", "--help", "-h", "--no-warmup", "--host-sampling"},
               {"-p", "-n", "-r", "--device", "--threads", "--dense-weights", "--parallel"}};
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
  std::vector<int> parallel;
  if (args->has("--parallel")) {
    auto p = parse_parallel(args->get_or("--parallel", ""));
    if (!p) return fail("bench", p.status().message(), 2);
    parallel = *p;
    if (*n_prompt < 1 || *n_gen < 2) return fail("bench", "--parallel needs -p >= 1 and -n >= 2", 2);
  }
  const bool warmup = !args->has("--no-warmup");
  const bool host_sampling = args->has("--host-sampling");

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
  lo.max_sequences = parallel.empty() ? 1 : *std::max_element(parallel.begin(), parallel.end());
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

  int nthreads = *threads > 0 ? static_cast<int>(*threads)
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string backend = info.device;
  std::transform(backend.begin(), backend.end(), backend.begin(), ::toupper);
  if (!parallel.empty()) {
    return bench_parallel(*runner, info, parallel, static_cast<int>(*n_prompt), static_cast<int>(*n_gen),
                          static_cast<int>(*reps), warmup, args->has("--json"), host_sampling, random_tokens);
  }

  // Warm-up as llama-bench's: one untimed run of the whole prefill test, one decoded token.
  if (warmup && *n_prompt > 0) {
    auto warm = run_prefill(r, random_tokens(*n_prompt));
    if (!warm) return fail("bench", warm.status().message());
  }
  if (warmup && *n_gen > 0) {
    auto warm = run_decode(r, random_tokens(1), host_sampling);
    if (!warm) return fail("bench", warm.status().message());
  }
  std::vector<double> pp_rates, tg_rates, pp_secs, tg_secs;
  for (long long i = 0; i < *reps && *n_prompt > 0; ++i) {
    auto s = run_prefill(r, random_tokens(*n_prompt));
    if (!s) return fail("bench", s.status().message());
    pp_secs.push_back(*s);
    pp_rates.push_back(static_cast<double>(*n_prompt) / *s);
  }
  for (long long i = 0; i < *reps && *n_gen > 0; ++i) {
    auto s = run_decode(r, random_tokens(*n_gen), host_sampling);
    if (!s) return fail("bench", s.status().message());
    tg_secs.push_back(*s);
    tg_rates.push_back(static_cast<double>(*n_gen) / *s);
  }
  const Stat pp = stats(pp_rates), tg = stats(tg_rates);
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
                        {"warmup", warmup},
                        {"host_sampling", host_sampling},
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
