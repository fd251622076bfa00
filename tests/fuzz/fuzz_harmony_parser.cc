// Harmony streaming parser on arbitrary token streams: bytes -> token ids -> Parser::push ...
// finish(). Each 3 bytes (big-endian) are an id modulo 201097, so a few ids lie past the
// vocabulary; dict/harmony_parser.dict holds the special tokens' encodings. Never crashes; the
// streaming parser and parse_completion agree on messages and problems.
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "harmony/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gptoss;
  if (size == 0) return 0;
  const Tokenizer& tok = fuzz::builtin_tokenizer();
  std::vector<uint32_t> ids;
  for (size_t i = 1; i + 2 < size; i += 3) {
    uint32_t v = (uint32_t(data[i]) << 16) | (uint32_t(data[i + 1]) << 8) | data[i + 2];
    ids.push_back(v % (Tokenizer::kLastSpecialId + 9));
  }
  harmony::ParserOptions opts;
  if (data[0] & 1) opts.role = std::nullopt;
  harmony::Parser parser(tok, opts);
  std::vector<harmony::ParseEvent> events;
  for (uint32_t id : ids) parser.push(id, events);
  parser.finish(events);
  auto batch = harmony::parse_completion(tok, ids, opts.role);
  if (batch.messages.size() != parser.messages().size()) std::abort();
  if (batch.problems.size() != parser.problems().size()) std::abort();
  for (const auto& e : events) {
    if (e.kind == harmony::ParseEvent::Kind::kMessageStart) (void)harmony::classify(e.header);
  }
  for (const auto& m : parser.messages()) (void)harmony::message_to_json(m);
  return 0;
}
