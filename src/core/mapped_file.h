// A read-only memory map of a whole file. Weights are used in place from it, never copied.
//
// A file truncated after it was mapped (also by a rewrite that opens it with O_TRUNC) makes the
// kernel raise SIGBUS on the next read of a page past the new end, in whatever thread touches it
// (often a kernel's worker). Replacing the file by rename is safe (the mapping keeps the old
// inode); bytes rewritten in place without shrinking the file are not detected (they are read).
// Sizes are checked at open, so only such a change under a running process is left: every live
// mapping is registered, and a SIGBUS handler turns a fault inside one into a fatal error that
// names the file and the offset and exits with kMappedFileChangedExitCode, instead of a core dump.
// Faults elsewhere go to the previous handler (or the default action): real bugs still crash.
// Continuing is not possible: the fault may hit any kernel mid-step, and copying the weights out of
// the mapping would double the memory of a 13 GB model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace gptoss {

// sysexits.h EX_IOERR: the exit status after a mapped file changed on disk while in use.
inline constexpr int kMappedFileChangedExitCode = 74;

class MappedFile {
 public:
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  int guard_slot_ = -1;  // index in the SIGBUS handler's table of mappings, -1 when full
};

// Reads a whole (small) file into a string: configs, indexes, JSON requests.
Expected<std::string> read_text_file(const std::string& path);

}  // namespace gptoss
