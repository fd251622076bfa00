// How the cuda kernels find a cached key/value row (backend/backend.h KvLayer): contiguous
// ([slot][capacity], position p at p % capacity) or paged (position p of a slot at row
// table[slot * per_slot + p / page_size] * page_size + p % page_size of a shared pool).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptoss::cuda {

struct KvPages {
  const int32_t* table = nullptr;  // device [slots][per_slot]; null: contiguous
  int page_size = 0;               // 0: contiguous
  int per_slot = 0;
};

#ifdef __CUDACC__
__device__ __forceinline__ size_t kv_cache_row(int slot, int p, int capacity, const KvPages& pages) {
  if (pages.page_size == 0) return static_cast<size_t>(slot) * capacity + p % capacity;
  const int32_t page = __ldg(pages.table + static_cast<size_t>(slot) * pages.per_slot + p / pages.page_size);
  return static_cast<size_t>(page) * pages.page_size + p % pages.page_size;
}
#endif

}  // namespace gptoss::cuda
