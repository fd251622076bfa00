#include "tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <queue>

namespace gptoss {
namespace {

constexpr uint32_t kNone = BpeVocab::kNone;

}  // namespace

void bpe_encode_piece_quadratic(const BpeVocab& vocab, const char* piece, size_t n,
                                std::vector<uint32_t>* out) {
  // start[k] = first byte of part k; rank[k] = rank of part k ++ part k+1. Small and on the stack.
  // part[k] = rank of part k itself.
  uint32_t start_buf[kBpeHeapThreshold + 2];
  uint32_t rank_buf[kBpeHeapThreshold + 2];
  uint32_t part_buf[kBpeHeapThreshold + 2];
  std::vector<uint32_t> start_vec, rank_vec, part_vec;
  uint32_t* start = start_buf;
  uint32_t* rank = rank_buf;
  uint32_t* part = part_buf;
  if (n > kBpeHeapThreshold) {
    start_vec.resize(n + 1);
    rank_vec.resize(n + 1);
    part_vec.resize(n + 1);
    start = start_vec.data();
    rank = rank_vec.data();
    part = part_vec.data();
  }
  for (size_t k = 0; k < n; ++k) part[k] = vocab.byte_rank(static_cast<uint8_t>(piece[k]));
  size_t parts = n;
  for (size_t k = 0; k <= n; ++k) start[k] = static_cast<uint32_t>(k);
  for (size_t k = 0; k + 1 < n; ++k) rank[k] = vocab.rank(piece + k, 2);
  rank[n - 1] = kNone;
  auto pair_rank = [&](size_t k) -> uint32_t {  // part k ++ part k+1
    if (k + 1 >= parts) return kNone;
    return vocab.rank(piece + start[k], start[k + 2] - start[k]);
  };
  while (parts > 1) {
    uint32_t best = kNone;
    size_t at = 0;
    for (size_t k = 0; k + 1 < parts; ++k) {
      if (rank[k] < best) {
        best = rank[k];
        at = k;
      }
    }
    if (best == kNone) break;
    // Merge part at+1 into part at.
    std::copy(start + at + 2, start + parts + 1, start + at + 1);
    std::copy(rank + at + 2, rank + parts, rank + at + 1);
    std::copy(part + at + 2, part + parts, part + at + 1);
    part[at] = best;
    --parts;
    rank[at] = pair_rank(at);
    if (at > 0) rank[at - 1] = pair_rank(at - 1);
  }
  out->insert(out->end(), part, part + parts);
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
    return vocab.rank(piece + s, e - s);
  };
  for (uint32_t k = 0; k + 1 < n; ++k) {
    pair[k] = vocab.rank(piece + k, 2);
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

void bpe_encode_piece(const BpeVocab& vocab, const char* piece, size_t n, std::vector<uint32_t>* out) {
  if (n == 1) {
    out->push_back(vocab.byte_rank(static_cast<uint8_t>(piece[0])));
    return;
  }
  uint32_t whole = vocab.rank(piece, n);
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
