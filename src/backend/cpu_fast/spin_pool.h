// The cpu-fast backend's thread pool: like cpu::ThreadPool (threads - 1 workers, the caller takes
// part, tasks taken dynamically), but workers spin for a short while between jobs before they
// sleep, and the caller spins until its job is done. A decode step runs a few hundred jobs of
// 0.05-10 ms back to back; waking a sleeping thread (futex, and on a VM an inter-processor
// interrupt to a halted vCPU) costs tens of microseconds per job, which spinning avoids.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gptoss::cpu_fast {

class SpinPool {
 public:
  // spin: how long an idle worker polls for the next job before it sleeps.
  explicit SpinPool(int threads, std::chrono::microseconds spin = std::chrono::microseconds(50))
      : threads_(std::max(1, threads)), spin_(spin) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { work(); });
  }
  ~SpinPool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  SpinPool(const SpinPool&) = delete;
  SpinPool& operator=(const SpinPool&) = delete;

  int size() const { return threads_; }

  // Runs task(i) for i in [0, tasks) and returns when all are done. Calls are serialised.
  void run(int tasks, const std::function<void(int)>& task) {
    if (tasks <= 0) return;
    std::lock_guard<std::mutex> serial(run_m_);
    const uint32_t gen = ++gen_count_;
    // Close the counter to the previous job before its task/count are replaced: a thread that
    // still holds the old generation then finds another one and takes nothing.
    next_.store((static_cast<uint64_t>(gen) << 32) | 0x7fffffffu);
    task_.store(&task);
    tasks_.store(tasks);
    done_.store(0);
    next_.store(static_cast<uint64_t>(gen) << 32);
    generation_.store(gen);  // publishes the job
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(m_);
      wake_.notify_all();
    }
    drain(gen, &task, tasks);
    // The last tasks are running on other threads: poll, yielding the core once that takes longer
    // than the spin time (a worker preempted on a busy machine).
    const auto until = std::chrono::steady_clock::now() + spin_;
    for (int i = 0; done_.load() < tasks; ++i) {
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) {
        std::this_thread::yield();
      } else {
        pause();
      }
    }
  }

 private:
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  // Takes tasks of job `gen` until none are left. The index counter carries the job's generation
  // in its high half and is only advanced by compare-exchange against that generation, so a thread
  // still looking at a finished job can never take (or lose) a task of the next one.
  void drain(uint32_t gen, const std::function<void(int)>* task, int tasks) {
    uint64_t v = next_.load();
    for (;;) {
      if (static_cast<uint32_t>(v >> 32) != gen || static_cast<int>(v & 0xffffffffu) >= tasks) return;
      if (!next_.compare_exchange_weak(v, v + 1)) continue;
      (*task)(static_cast<int>(v & 0xffffffffu));
      done_.fetch_add(1);
      v = next_.load();
    }
  }

  void work() {
    uint32_t seen = 0;
    for (;;) {
      // Spin for up to spin_ on the next job, then sleep until one is published.
      const auto until = std::chrono::steady_clock::now() + spin_;
      uint32_t gen = generation_.load();
      for (int i = 0; gen == seen && !stop_.load(); ++i) {
        pause();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(m_);
          sleepers_.fetch_add(1);
          wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
          sleepers_.fetch_sub(1);
        }
        gen = generation_.load();
      }
      if (stop_.load()) return;
      seen = gen;
      // task_/tasks_ may already belong to a later job; drain() then finds another generation in
      // the counter and takes nothing.
      drain(gen, task_.load(), tasks_.load());
    }
  }

  const int threads_;
  const std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex run_m_;
  std::mutex m_;
  std::condition_variable wake_;
  uint32_t gen_count_ = 0;  // guarded by run_m_
  std::atomic<uint32_t> generation_{0};
  std::atomic<const std::function<void(int)>*> task_{nullptr};
  std::atomic<int> tasks_{0};
  std::atomic<uint64_t> next_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace gptoss::cpu_fast
