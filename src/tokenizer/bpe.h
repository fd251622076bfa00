// Byte-pair merging of one pre-tokenized piece, with tiktoken's rule: repeatedly merge the
// adjacent pair whose concatenation has the lowest rank (ties: leftmost) until no adjacent
// pair concatenates to a token. Long pieces use a heap, so the cost is O(n log n), not O(n^2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tokenizer/vocab.h"

namespace gptoss {

// Appends the ranks of `piece` (n >= 1 bytes) to *out. At least 8 bytes after the piece must be
// readable (the tokenizer pads its input).
void bpe_encode_piece(const BpeVocab& vocab, const char* piece, size_t n,
                      std::vector<uint32_t>* out);

// Pieces longer than this take the heap path (exposed for tests that compare both paths).
inline constexpr size_t kBpeHeapThreshold = 48;
void bpe_encode_piece_quadratic(const BpeVocab& vocab, const char* piece, size_t n,
                                std::vector<uint32_t>* out);
void bpe_encode_piece_heap(const BpeVocab& vocab, const char* piece, size_t n,
                           std::vector<uint32_t>* out);

}  // namespace gptoss
