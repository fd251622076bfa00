// parallel_for over an index range on a small persistent thread pool. Each index is handled by
// exactly one thread and the split never changes what is computed for an index, so results do not
// depend on the thread count (the exact path must give the same bits for any batch and thread count).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gptoss::cpu {

// threads - 1 workers that sleep between jobs; the calling thread takes part in every job.
// Starting threads per op cost ~20 us each, which on a many-core machine would add up to a large
// share of a decode step.
class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(std::max(1, threads)) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }

  // Runs task(i) for i in [0, tasks) and returns when all are done. Calls are serialised.
  void run(int tasks, const std::function<void(int)>& task) {
    std::lock_guard<std::mutex> serial(run_m_);
    {
      std::lock_guard<std::mutex> lock(m_);
      task_ = &task;
      tasks_ = tasks;
      next_.store(0);
      remaining_ = tasks;
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(m_);
    // Also wait for workers still inside drain(): they must never see the next job's counter
    // with this job's task.
    done_.wait(lock, [this] { return remaining_ == 0 && active_ == 0; });
    task_ = nullptr;
  }

 private:
  // Takes tasks of the current job until none are left.
  void drain() {
    int done = 0;
    for (int i = next_.fetch_add(1); i < tasks_; i = next_.fetch_add(1)) {
      (*task_)(i);
      ++done;
    }
    if (done > 0) {
      std::lock_guard<std::mutex> lock(m_);
      remaining_ -= done;
      if (remaining_ == 0) done_.notify_all();
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (task_ == nullptr) continue;  // that job is already over
        ++active_;
      }
      drain();
      std::lock_guard<std::mutex> lock(m_);
      if (--active_ == 0) done_.notify_all();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex run_m_;
  std::mutex m_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int)>* task_ = nullptr;
  int tasks_ = 0;
  std::atomic<int> next_{0};
  int remaining_ = 0;
  int active_ = 0;  // workers inside drain()
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// fn(begin, end) over [0, n) in contiguous chunks. `cost` is a rough per-index work estimate (e.g.
// multiply-adds); small jobs run inline on the caller.
template <typename Fn>
void parallel_for(size_t n, size_t cost, ThreadPool& pool, Fn&& fn) {
  constexpr size_t kMinWorkPerThread = 1 << 16;
  size_t want = std::min<size_t>(static_cast<size_t>(pool.size()), n);
  if (cost * n < kMinWorkPerThread * 2) want = 1;
  want = std::min(want, std::max<size_t>(1, cost * n / kMinWorkPerThread));
  if (want <= 1) {
    fn(size_t{0}, n);
    return;
  }
  const size_t chunk = (n + want - 1) / want;
  const int tasks = static_cast<int>((n + chunk - 1) / chunk);
  pool.run(tasks, [&](int w) {
    const size_t b = static_cast<size_t>(w) * chunk;
    fn(b, std::min(n, b + chunk));
  });
}

}  // namespace gptoss::cpu
