// SpinPool: every index of every job runs exactly once, jobs of any size back to back (workers
// spinning) and after pauses (workers asleep), and the pool shuts down cleanly.
#include "backend/cpu_fast/spin_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace gptoss::cpu_fast {
namespace {

TEST(SpinPool, EveryIndexRunsExactlyOnceAcrossManyJobs) {
  for (int threads : {1, 2, 4}) {
    SpinPool pool(threads, std::chrono::microseconds(threads == 4 ? 0 : 2000));  // 0: sleep at once
    EXPECT_EQ(pool.size(), threads);
    for (int job = 0; job < 2000; ++job) {
      const int tasks = job % 37;  // includes 0 and 1
      std::vector<std::atomic<int>> hits(static_cast<size_t>(tasks));
      pool.run(tasks, [&](int i) { hits[static_cast<size_t>(i)].fetch_add(1); });
      for (int i = 0; i < tasks; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "job " << job << " i " << i;
      if (job % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers go to sleep
    }
  }
}

TEST(SpinPool, UsesTheWorkersAndWaitsForSlowTasks) {
  SpinPool pool(2);
  std::atomic<int> sum{0};
  std::vector<std::thread::id> who(8);
  pool.run(8, [&](int i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    who[static_cast<size_t>(i)] = std::this_thread::get_id();
    sum.fetch_add(i);
  });
  EXPECT_EQ(sum.load(), 28);  // all done when run() returns
  bool other = false;
  for (const auto& id : who) other = other || id != std::this_thread::get_id();
  EXPECT_TRUE(other);  // a worker took part
}

}  // namespace
}  // namespace gptoss::cpu_fast
