#include "core/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace gptoss {

namespace {

// The mappings the SIGBUS handler knows. A fixed table of atomics: the handler may run at any time
// on any thread, so it takes no lock and touches nothing that could be mid-update in a harmful way.
constexpr int kGuardSlots = 256;
constexpr size_t kGuardPathBytes = 1024;

struct GuardSlot {
  std::atomic<bool> taken{false};
  std::atomic<uintptr_t> begin{0};
  std::atomic<size_t> size{0};  // 0: not in use (set last on register, first on unregister)
  char path[kGuardPathBytes] = {};
};

GuardSlot g_guard[kGuardSlots];
struct sigaction g_previous_sigbus {};
std::once_flag g_install_once;

// Async-signal-safe output: write(2) only.
void put(const char* s) {
  size_t n = 0;
  while (s[n] != 0) ++n;
  while (n > 0) {
    ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void put_u64(uint64_t v) {
  char buf[24];
  char* p = buf + sizeof(buf) - 1;
  *p = 0;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  put(p);
}

std::atomic<bool> g_reporting{false};  // a thread is writing the fatal message (on_sigbus)
static_assert(std::atomic<bool>::is_always_lock_free);

void on_sigbus(int sig, siginfo_t* info, void* context) {
  // Only a fault raised by the kernel for a memory access has a meaningful address.
  if (info != nullptr && info->si_code > 0) {
    const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
    for (const GuardSlot& slot : g_guard) {
      const size_t size = slot.size.load(std::memory_order_acquire);
      const uintptr_t begin = slot.begin.load(std::memory_order_acquire);
      if (size == 0 || addr < begin || addr - begin >= size) continue;
      // Several threads can fault on the truncated file at once (the decode threads share every
      // weight): the first one reports and exits, the others wait here for that exit, so that the
      // message is written once and whole. (std::atomic<bool> is lock-free: signal-safe.)
      if (g_reporting.exchange(true)) {
        for (;;) ::pause();
      }
      put("gptoss: fatal: ");
      put(slot.path);
      put(" changed on disk while in use: reading byte ");
      put_u64(addr - begin);
      put(" of the ");
      put_u64(size);
      put(" bytes mapped when it was opened failed (");
      struct stat st {};
      if (::stat(slot.path, &st) == 0) {
        put("the file is now ");
        put_u64(static_cast<uint64_t>(st.st_size));
        put(" bytes: ");
      } else {
        put("the file is gone: ");
      }
      put("it was truncated or rewritten in place). Restore the file (or download it again) and "
          "start again.\n");
      ::_exit(kMappedFileChangedExitCode);
    }
  }
  // Not one of our mappings: whatever handled SIGBUS before us (e.g. a sanitizer), or the default
  // action, so that a real bug still stops with its signal and core.
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    if (g_previous_sigbus.sa_sigaction != nullptr) {
      g_previous_sigbus.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
    return;
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  // A fault re-executes the access on return and gets the default action; a signal sent with
  // kill() would not, so send it again.
  if (info == nullptr || info->si_code <= 0) raise(sig);
}

void install_sigbus_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &g_previous_sigbus);
}

int guard_register(const std::string& path, const uint8_t* data, size_t size) {
  std::call_once(g_install_once, install_sigbus_handler);
  for (int i = 0; i < kGuardSlots; ++i) {
    bool expected = false;
    if (!g_guard[i].taken.compare_exchange_strong(expected, true)) continue;
    GuardSlot& slot = g_guard[i];
    const size_t n = std::min(path.size(), kGuardPathBytes - 1);
    std::memcpy(slot.path, path.data(), n);
    slot.path[n] = 0;
    slot.begin.store(reinterpret_cast<uintptr_t>(data), std::memory_order_release);
    slot.size.store(size, std::memory_order_release);
    return i;
  }
  return -1;  // more live mappings than slots: this one faults with the default action
}

void guard_unregister(int i) {
  if (i < 0) return;
  g_guard[i].size.store(0, std::memory_order_release);
  g_guard[i].begin.store(0, std::memory_order_release);
  g_guard[i].taken.store(false, std::memory_order_release);
}

}  // namespace

Expected<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Error("{}: cannot stat: {}", path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error("{}: not a regular file", path);
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return Error("{}: mmap of {} bytes failed: {}", path, f->size_, std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->guard_slot_ = guard_register(path, f->data_, f->size_);
  }
  ::close(fd);
  return f;
}

MappedFile::~MappedFile() {
  guard_unregister(guard_slot_);
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

Expected<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error("{}: read error", path);
  return ss.str();
}

}  // namespace gptoss
