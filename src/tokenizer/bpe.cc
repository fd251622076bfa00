#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <queue>

namespace gptoss {
namespace {

constexpr uint32_t kNone = BpeVocab::kNone;

}  // namespace

void bpe_encode_piece_quadratic(const BpeVocab& vocab, const char* piece, size_t n,
                                std::vector<uint32_t>* out) {
  // parts[k]: first byte, rank of the part itself, rank of it ++ part k+1. Small: on the stack.
  struct Part {
    uint32_t start, self, pair;
  };
  Part buf[kBpeHeapThreshold + 2];
  std::vector<Part> vec;
  Part* parts = buf;
  if (n > kBpeHeapThreshold) {
    vec.resize(n + 1);
    parts = vec.data();
  }
  for (size_t k = 0; k < n; ++k) {
    parts[k] = Part{static_cast<uint32_t>(k), vocab.byte_rank(static_cast<uint8_t>(piece[k])),
                    k + 1 < n ? vocab.rank_padded(piece + k, 2) : kNone};
  }
  parts[n] = Part{static_cast<uint32_t>(n), kNone, kNone};  // sentinel: end of the piece
  size_t count = n;
  auto pair_rank = [&](size_t k) -> uint32_t {  // part k ++ part k+1
    if (k + 1 >= count) return kNone;
    return vocab.rank_padded(piece + parts[k].start, parts[k + 2].start - parts[k].start);
  };
  while (count > 1) {
    uint32_t best = kNone;
    size_t at = 0;
    for (size_t k = 0; k + 1 < count; ++k) {
      if (parts[k].pair < best) {
        best = parts[k].pair;
        at = k;
      }
    }
    if (best == kNone) break;
    // Merge part at+1 into part at (the sentinel moves down too).
    std::memmove(parts + at + 1, parts + at + 2, (count - at - 1) * sizeof(Part));
    --count;
    parts[at].self = best;
    parts[at].pair = pair_rank(at);
    if (at > 0) parts[at - 1].pair = pair_rank(at - 1);
  }
  for (size_t k = 0; k < count; ++k) out->push_back(parts[k].self);
}

void bpe_encode_piece_heap(const BpeVocab& vocab, const char* piece, size_t n,
                           std::vector<uint32_t>* out) {
  // Parts form a linked list keyed by their first byte; a part's pair rank is the rank of it
  // concatenated with the next part. The heap holds (rank << 32 | start); stale entries are
  // skipped when popped (a part's pair only grows, so a rank never comes back for the same start).
  std::vector<uint32_t> next(n), prev(n), pair(n, kNone), part(n);
  std::vector<uint8_t> alive(n, 1);
  std::vector<uint64_t> heap;
  heap.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    next[k] = static_cast<uint32_t>(k + 1);
    part[k] = vocab.byte_rank(static_cast<uint8_t>(piece[k]));
    prev[k] = static_cast<uint32_t>(k == 0 ? kNone : k - 1);
  }
  auto end_of = [&](uint32_t s) -> uint32_t { return next[s]; };
  auto compute = [&](uint32_t s) -> uint32_t {
    uint32_t nx = next[s];
    if (nx >= n) return kNone;
    uint32_t e = end_of(nx);
    return vocab.rank_padded(piece + s, e - s);
  };
  for (uint32_t k = 0; k + 1 < n; ++k) {
    pair[k] = vocab.rank_padded(piece + k, 2);
    if (pair[k] != kNone) heap.push_back((uint64_t{pair[k]} << 32) | k);
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    uint64_t top = heap.back();
    heap.pop_back();
    uint32_t s = static_cast<uint32_t>(top);
    uint32_t r = static_cast<uint32_t>(top >> 32);
    if (!alive[s] || pair[s] != r) continue;
    uint32_t victim = next[s];
    alive[victim] = 0;
    part[s] = r;
    next[s] = next[victim];
    if (next[s] < n) prev[next[s]] = s;
    pair[s] = compute(s);
    if (pair[s] != kNone) {
      heap.push_back((uint64_t{pair[s]} << 32) | s);
      std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    }
    if (prev[s] != kNone) {
      uint32_t p = prev[s];
      pair[p] = compute(p);
      if (pair[p] != kNone) {
        heap.push_back((uint64_t{pair[p]} << 32) | p);
        std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
      }
    }
  }
  for (uint32_t s = 0; s < n; s = next[s]) out->push_back(part[s]);
}

void bpe_encode_piece(const BpeVocab& vocab, const char* piece, size_t n,
                      std::vector<uint32_t>* out) {
  if (n == 1) {
    out->push_back(vocab.byte_rank(static_cast<uint8_t>(piece[0])));
    return;
  }
  uint32_t whole = vocab.rank_padded(piece, n);
  if (whole != BpeVocab::kNone) {
    out->push_back(whole);
    return;
  }
  if (n <= kBpeHeapThreshold) {
    bpe_encode_piece_quadratic(vocab, piece, n, out);
  } else {
    bpe_encode_piece_heap(vocab, piece, n, out);
  }
}

}  // namespace gptoss
