// parallel_for over an index range with plain std::threads. Each index is handled by exactly one
// thread and the split never changes what is computed for an index, so results do not depend on
// the thread count (the exact path must give the same bits for any batch and thread count).
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace gptoss::cpu {

// fn(begin, end) over [0, n). `cost` is a rough per-index work estimate (e.g. multiply-adds); small
// jobs run inline because starting threads costs tens of microseconds.
template <typename Fn>
void parallel_for(size_t n, size_t cost, int threads, Fn&& fn) {
  constexpr size_t kMinWorkPerThread = 1 << 16;
  size_t want = threads <= 1 ? 1 : std::min<size_t>(threads, n);
  if (cost * n < kMinWorkPerThread * 2) want = 1;
  want = std::min(want, std::max<size_t>(1, cost * n / kMinWorkPerThread));
  if (want <= 1) {
    fn(size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(want - 1);
  const size_t chunk = (n + want - 1) / want;
  for (size_t w = 1; w < want; ++w) {
    const size_t b = w * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(size_t{0}, std::min(n, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace gptoss::cpu
