#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace gptoss::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kContextFull: return "context_full";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

bool picks_argmax(const SamplingParams& p) {
  // top-k 1 keeps one candidate whatever min-p, top-p and the temperature do, and sample() returns a
  // one-entry distribution without a draw (distribution() sorts by logit, ties by id).
  return (p.temperature <= 0.0f || p.top_k == 1) && p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f &&
         p.frequency_penalty == 0.0f;
}

Sampler::Sampler(const SamplingParams& params, const std::vector<uint32_t>& prompt)
    : params_(params), rng_(params.has_seed ? params.seed : std::random_device{}()) {
  if (params_.repetition_penalty != 1.0f) {
    for (uint32_t t : prompt) seen_[t]++;
  }
}

void Sampler::accept(uint32_t token) {
  seen_[token]++;
  generated_[token]++;
}

void Sampler::apply_penalties(std::vector<float>& logits) const {
  const int n = static_cast<int>(logits.size());
  if (params_.repetition_penalty != 1.0f) {
    for (const auto& [tok, count] : seen_) {
      if (static_cast<int>(tok) >= n) continue;
      float& l = logits[tok];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [tok, count] : generated_) {
      if (static_cast<int>(tok) >= n) continue;
      logits[tok] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  }
}

std::vector<std::pair<uint32_t, float>> Sampler::distribution(const float* in, int n) const {
  std::vector<float> logits(in, in + n);
  apply_penalties(logits);
  std::vector<std::pair<uint32_t, float>> out;
  if (n <= 0) return out;
  if (params_.temperature <= 0.0f) {
    int best = 0;
    for (int i = 1; i < n; ++i)
      if (logits[i] > logits[best]) best = i;  // ties: lowest id
    out.emplace_back(static_cast<uint32_t>(best), 1.0f);
    return out;
  }
  // Candidates sorted by logit (ties by id). Only a prefix is sorted when top-k bounds it; a
  // full sort happens at most when top-p needs the tail.
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  auto by_logit = [&](uint32_t a, uint32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  int keep = n;
  if (params_.top_k > 0 && params_.top_k < n) keep = params_.top_k;
  int sorted = std::min(keep, 4096);
  std::partial_sort(idx.begin(), idx.begin() + sorted, idx.end(), by_logit);
  const double inv_t = 1.0 / params_.temperature;
  const double max_l = logits[idx[0]];
  // Normaliser over all kept candidates (not just the sorted prefix).
  double z = 0.0;
  for (int i = 0; i < keep; ++i) z += std::exp((logits[idx[i]] - max_l) * inv_t);
  auto prob = [&](int i) { return std::exp((logits[idx[i]] - max_l) * inv_t) / z; };

  auto sort_all_kept = [&] {
    if (sorted < keep) {
      std::sort(idx.begin() + sorted, idx.begin() + keep, by_logit);
      sorted = keep;
    }
  };
  if (params_.min_p > 0.0f) {
    // A threshold: exact on the sorted prefix unless every prefix entry passes it.
    const double cut = params_.min_p * prob(0);
    auto count_passing = [&] {
      int k = 0;
      while (k < sorted && prob(k) >= cut) ++k;
      return k;
    };
    int k = count_passing();
    if (k == sorted && sorted < keep) {
      sort_all_kept();
      k = count_passing();
    }
    keep = std::max(k, 1);
    sorted = std::min(sorted, keep);
  }
  if (params_.top_p < 1.0f) {
    double kept_mass = 0.0;
    for (int i = 0; i < keep; ++i) kept_mass += prob(i);
    auto nucleus = [&]() -> int {  // smallest sorted prefix reaching top_p, or -1
      double cum = 0.0;
      for (int k = 0; k < sorted; ++k) {
        cum += prob(k) / kept_mass;
        if (cum >= params_.top_p) return k + 1;
      }
      return -1;
    };
    int k = nucleus();
    if (k < 0) {
      sort_all_kept();
      k = nucleus();
      if (k < 0) k = keep;  // rounding: the whole set
    }
    keep = k;
  }
  if (keep > sorted) {
    std::sort(idx.begin() + sorted, idx.begin() + keep, by_logit);
  }
  double mass = 0.0;
  for (int i = 0; i < keep; ++i) mass += prob(i);
  out.reserve(keep);
  for (int i = 0; i < keep; ++i) out.emplace_back(idx[i], static_cast<float>(prob(i) / mass));
  return out;
}

namespace {

// The first index of the largest value, NaN never larger (a NaN at index 0 is returned, as a scan
// `if (x[i] > x[best]) best = i` does). Two passes without a loop-carried chain through the
// comparison: the maximum in 16 independent lanes (SSE max where available: max(x, acc) keeps acc
// when x is NaN), then the first index holding it; 3-6x faster than the scan on 201088 entries.
uint32_t greedy_argmax(const float* in, int n) {
  if (!(in[0] == in[0])) return 0;
  constexpr int kLanes = 16;
  float lane[kLanes];
  int i = 0;
#if defined(__SSE2__)
  __m128 a0 = _mm_set1_ps(in[0]), a1 = a0, a2 = a0, a3 = a0;
  for (; i + kLanes <= n; i += kLanes) {
    a0 = _mm_max_ps(_mm_loadu_ps(in + i), a0);
    a1 = _mm_max_ps(_mm_loadu_ps(in + i + 4), a1);
    a2 = _mm_max_ps(_mm_loadu_ps(in + i + 8), a2);
    a3 = _mm_max_ps(_mm_loadu_ps(in + i + 12), a3);
  }
  _mm_storeu_ps(lane, a0);
  _mm_storeu_ps(lane + 4, a1);
  _mm_storeu_ps(lane + 8, a2);
  _mm_storeu_ps(lane + 12, a3);
#else
  for (float& l : lane) l = in[0];
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lane[j] = in[i + j] > lane[j] ? in[i + j] : lane[j];
  }
#endif
  float best = in[0];
  for (float l : lane) best = l > best ? l : best;
  for (; i < n; ++i) best = in[i] > best ? in[i] : best;
  int k = 0;
#if defined(__SSE2__)
  const __m128 b = _mm_set1_ps(best);
  for (; k + kLanes <= n; k += kLanes) {
    const int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(in + k), b)) |
                    (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(in + k + 4), b)) << 4) |
                    (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(in + k + 8), b)) << 8) |
                    (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(in + k + 12), b)) << 12);
    if (hit != 0) return static_cast<uint32_t>(k + __builtin_ctz(static_cast<unsigned>(hit)));
  }
#endif
  for (; k < n; ++k) {
    if (in[k] == best) return static_cast<uint32_t>(k);
  }
  return 0;
}

}  // namespace

uint32_t Sampler::sample(const float* in, int n) {
  if (params_.temperature <= 0.0f && params_.repetition_penalty == 1.0f && params_.presence_penalty == 0.0f &&
      params_.frequency_penalty == 0.0f && n > 0) {
    // Greedy without penalties: the argmax of the row as it is (distribution()'s pick, ties to the
    // lowest id), with no copy of the row: batched decode samples vocab-sized rows per sequence
    // per step on the engine thread.
    return greedy_argmax(in, n);
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const bool truncates = params_.top_k > 0 || params_.top_p < 1.0f || params_.min_p > 0.0f;
  if (params_.temperature > 0.0f && !truncates && n > 0) {
    // Plain softmax sampling needs no sort: walk the ids in order.
    std::vector<float> logits(in, in + n);
    apply_penalties(logits);
    const double inv_t = 1.0 / params_.temperature;
    const double max_l = *std::max_element(logits.begin(), logits.end());
    double z = 0.0;
    for (float l : logits) z += std::exp((l - max_l) * inv_t);
    const double r = u(rng_) * z;
    double cum = 0.0;
    for (int i = 0; i < n; ++i) {
      cum += std::exp((logits[i] - max_l) * inv_t);
      if (r < cum) return static_cast<uint32_t>(i);
    }
    return static_cast<uint32_t>(n - 1);
  }
  auto dist = distribution(in, n);
  if (dist.size() == 1) return dist[0].first;
  double r = u(rng_);
  double cum = 0.0;
  for (const auto& [tok, p] : dist) {
    cum += p;
    if (r < cum) return tok;
  }
  return dist.back().first;
}

}  // namespace gptoss::engine
