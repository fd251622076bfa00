// SHA-256 (FIPS 180-4) and SHA-1, streaming. Used to verify LFS blobs against the hub's metadata while they
// download, so a finished file never needs a second read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gptoss::hub {

class Sha256 {
 public:
  Sha256() { reset(); }
  void reset();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash; the object must be reset() before reuse.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  void compress_blocks(const uint8_t* blocks, size_t n);  // SHA-NI when the CPU has it
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);

// Tests set this to check the portable block function on machines with SHA-NI.
extern bool force_portable_sha256;

// SHA-1, only to check small non-LFS files against their git blob id:
// sha1("blob <size>\0" + content), which is what the hub lists as their oid.
class Sha1 {
 public:
  Sha1() { reset(); }
  void reset();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);
  uint32_t h_[5];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha1_hex(std::string_view data);
// The git object id of a blob with this content.
std::string git_blob_id(std::string_view content);

// Hashes a whole file from disk (streaming, 1 MiB at a time).
Expected<std::string> sha256_file(const std::string& path);

}  // namespace gptoss::hub
