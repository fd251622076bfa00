// The MoE ops' grouping of routed (token, slot) pairs by expert, shared by the exact cpu backend
// and cpu-fast: each expert's weights are then read once for all the tokens routed to it.
#pragma once

#include <cstdint>
#include <vector>

namespace gptoss {

// The (token, slot) pairs routed to each expert, and the experts used at all (ascending).
struct ExpertGroups {
  std::vector<std::vector<int32_t>> pairs;
  std::vector<int32_t> used;
};

// idx[T * k]: the expert of pair p = t * k + slot; every id must be below `experts`.
inline ExpertGroups group_by_expert(const int32_t* idx, int T, int k, int64_t experts) {
  ExpertGroups g;
  g.pairs.resize(static_cast<size_t>(experts));
  for (int32_t p = 0; p < T * k; ++p) g.pairs[idx[p]].push_back(p);
  for (int32_t e = 0; e < experts; ++e) {
    if (!g.pairs[e].empty()) g.used.push_back(e);
  }
  return g;
}

}  // namespace gptoss
