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

namespace detail {
// The 64-byte block buffer and the length padding (0x80, zeros, the big-endian bit count) that
// SHA-256 and SHA-1 share: whole blocks go to blocks(pointer, count), the rest waits here.
struct BlockBuffer {
  uint8_t buf[64];
  size_t len = 0;
  uint64_t total = 0;

  void reset() { len = 0, total = 0; }

  template <typename Blocks>
  void update(const uint8_t* p, size_t n, Blocks blocks) {
    total += n;
    if (len > 0) {
      const size_t take = n < sizeof(buf) - len ? n : sizeof(buf) - len;
      for (size_t i = 0; i < take; ++i) buf[len + i] = p[i];
      len += take;
      p += take;
      n -= take;
      if (len < sizeof(buf)) return;
      blocks(buf, 1);
      len = 0;
    }
    if (n >= 64) blocks(p, n / 64);
    p += n / 64 * 64;
    n %= 64;
    for (size_t i = 0; i < n; ++i) buf[i] = p[i];
    len = n;
  }

  template <typename Blocks>
  void finish(Blocks blocks) {
    const uint64_t bits = total * 8;
    uint8_t pad[72] = {0x80};
    const size_t pad_len = (len < 56) ? 56 - len : 120 - len;
    for (int i = 0; i < 8; ++i) pad[pad_len + i] = uint8_t(bits >> (56 - 8 * i));
    update(pad, pad_len + 8, blocks);
  }
};
}  // namespace detail

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
  detail::BlockBuffer buf_;
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
  void compress_blocks(const uint8_t* blocks, size_t n);
  uint32_t h_[5];
  detail::BlockBuffer buf_;
};

std::string sha1_hex(std::string_view data);
// The git object id of a blob with this content.
std::string git_blob_id(std::string_view content);

// Hashes a whole file from disk (streaming, 1 MiB at a time).
Expected<std::string> sha256_file(const std::string& path);

}  // namespace gptoss::hub
