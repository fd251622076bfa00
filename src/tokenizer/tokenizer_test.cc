// Unit tests for the o200k_harmony tokenizer. Expected ids come from tiktoken's o200k_harmony
// (tiktoken 0.14) on the same rank file; the pytest suite compares a large corpus.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "core/mapped_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/o200k_split.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace gptoss {
namespace {

const Tokenizer& tok() {
  static auto t = Tokenizer::builtin();
  EXPECT_TRUE(t.has_value()) << t.status().message();
  return **t;
}

TEST(Tokenizer, KnownIds) {
  EXPECT_EQ(tok().encode("Hello, world!"), (std::vector<uint32_t>{13225, 11, 2375, 0}));
  EXPECT_EQ(tok().encode("hello   world"), (std::vector<uint32_t>{24912, 256, 2375}));
  EXPECT_EQ(tok().encode("commentary"), (std::vector<uint32_t>{12606, 815}));
  EXPECT_EQ(tok().encode("1234567"), (std::vector<uint32_t>{7633, 19354, 22}));
  EXPECT_EQ(tok().encode(" \n\n  x"), (std::vector<uint32_t>{1202, 220, 1215}));
  EXPECT_EQ(tok().encode("你好，世界"), (std::vector<uint32_t>{177519, 979, 28428}));
  EXPECT_EQ(tok().encode("don'T"), (std::vector<uint32_t>{22130, 51532}));
}

TEST(Tokenizer, WhiteSpaceIsUnicodeWhiteSpace) {
  // U+180E is not White_Space (PCRE2's \h would take it).
  EXPECT_EQ(tok().encode("a\xE1\xA0\x8E"
                         "b"),
            (std::vector<uint32_t>{64, 157, 254, 236, 65}));
  // 's with a long s is not a contraction for tiktoken.
  EXPECT_EQ(tok().encode("I'\xC5\xBF"), (std::vector<uint32_t>{40, 6, 70067}));
}

TEST(Tokenizer, SpecialTokensOnlyWhenAllowed) {
  const std::string text = "<|start|>user<|message|>Hi<|end|>";
  EXPECT_EQ(tok().encode(text), (std::vector<uint32_t>{27, 91, 5236, 91, 29, 1428, 27, 91, 3938, 91,
                                                       29, 12194, 27, 91, 419, 91, 29}));
  EXPECT_EQ(tok().encode_with_special(text),
            (std::vector<uint32_t>{200006, 1428, 200008, 12194, 200007}));
  EXPECT_EQ(
      tok().encode_with_special(text, {"<|start|>"}),
      (std::vector<uint32_t>{200006, 1428, 27, 91, 3938, 91, 29, 12194, 27, 91, 419, 91, 29}));
  EXPECT_EQ(tok().encode_with_special("<|endofprompt|>"), (std::vector<uint32_t>{200018}));
  EXPECT_EQ(tok().special_id("<|start|>"), 200006u);
  EXPECT_EQ(tok().special_id("<|call|>"), 200012u);
  EXPECT_EQ(tok().special_id("<|reserved_201088|>"), 201088u);
  EXPECT_FALSE(tok().special_id("<|nope|>").has_value());
  EXPECT_TRUE(tok().is_special(200002));
  EXPECT_FALSE(tok().is_special(199997));
  EXPECT_EQ(tok().token_bytes(200007), "<|end|>");
  EXPECT_EQ(tok().vocab_size(), 201088u);
  EXPECT_EQ(tok().num_bpe_tokens(), 199998u);
}

TEST(Tokenizer, InvalidUtf8LikeTiktoken) {
  // tiktoken.encode("a\ud800b\ud83d\ude00") == encode("a\ufffdb\U0001F600") == [64, 3251, 65,
  // 84083]
  EXPECT_EQ(tok().encode("a\xED\xA0\x80"
                         "b\xED\xA0\xBD\xED\xB8\x80"),
            (std::vector<uint32_t>{64, 3251, 65, 84083}));
  EXPECT_EQ(tok().encode("a\xFF"
                         "b"),
            tok().encode("a\xEF\xBF\xBD"
                         "b"));
}

TEST(Tokenizer, DecodeRoundTripAndUnknownIds) {
  std::string text =
      "Straße — naïve café 👩‍👩‍👧 مرحبا नमस्ते\n\n\tx = f(1234);";
  EXPECT_EQ(tok().decode(tok().encode(text)), text);
  EXPECT_EQ(tok().decode({200006, 1428}), "<|start|>user");
  EXPECT_EQ(tok().decode({1428, 999999}), "user");
  auto bad = tok().decode_checked({1428, 300000});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("300000"), std::string::npos);
}

TEST(Tokenizer, LongRunsAreFast) {
  std::string run(200000, 'a');
  auto ids = tok().encode(run);
  EXPECT_EQ(tok().decode(ids), run);
  std::string spaces(100000, ' ');
  EXPECT_EQ(tok().decode(tok().encode(spaces + "x")), spaces + "x");
}

TEST(StreamDecoder, NeverSplitsACharacter) {
  // "é" is one token? Use byte tokens to force a split: 0xC3 0xA9.
  auto c3 = tok().token_id("\xC3");
  auto a9 = tok().token_id("\xA9");
  ASSERT_TRUE(c3 && a9);
  StreamDecoder d(tok());
  EXPECT_EQ(d.push(*c3), "");
  EXPECT_EQ(d.push(*a9), "\xC3\xA9");
  EXPECT_EQ(d.push(*c3), "");
  EXPECT_EQ(d.push(tok().encode("x")[0]), "\xEF\xBF\xBDx");  // C3 then 'x': invalid
  EXPECT_EQ(d.push(*c3), "");
  EXPECT_EQ(d.flush(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, TiktokenFileErrorsNameTheLine) {
  auto t = Tokenizer::from_tiktoken_text("QQ== 0\nQg== 1\n!!!! 2\n", "ranks.tiktoken");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find("ranks.tiktoken:3"), std::string::npos)
      << t.status().message();
  t = Tokenizer::from_tiktoken_text("QQ== 0\nQg== 0\n", "r");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find("r:2: rank 0 appears twice"), std::string::npos)
      << t.status().message();
  t = Tokenizer::from_tiktoken_text("QQ== 0\nQQ== 1\n", "r");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find("same bytes"), std::string::npos) << t.status().message();
  t = Tokenizer::from_tiktoken_text("QQ== x\n", "r");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find("r:1: rank 'x'"), std::string::npos) << t.status().message();
  t = Tokenizer::from_tiktoken_file("/nonexistent/o200k.tiktoken");
  ASSERT_FALSE(t.has_value());
}

}  // namespace
}  // namespace gptoss

namespace gptoss {
namespace {

// The hand-written splitter must give exactly the PCRE2 regex's pieces.
std::vector<std::string> pieces_regex(const Pretokenizer& re, std::string_view text) {
  std::vector<std::string> out;
  re.split(text, [&](const char* p, size_t n) { out.emplace_back(p, n); });
  return out;
}
std::vector<std::string> pieces_fast(std::string_view text) {
  std::vector<std::string> out;
  o200k_split(text, [&](const char* p, size_t n) { out.emplace_back(p, n); });
  return out;
}

void append_utf8(uint32_t cp, std::string* s) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Found by fuzz_tokenizer_json: invalid JSON holding a number out of double range made the
// error-location helper throw nlohmann's out_of_range out of the loader.
TEST(Tokenizer, TokenizerJsonWithHugeNumberIsAnError) {
  std::string path = ::testing::TempDir() + "gptoss_tok_1e999_" + std::to_string(::getpid()) + ".json";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("1e999\"im\"7{", f);
  std::fclose(f);
  auto t = Tokenizer::from_tokenizer_json(path);
  std::remove(path.c_str());
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status().message();
}

TEST(O200kSplit, EqualsPcre2RegexOnRandomText) {
  auto re = Pretokenizer::create();
  ASSERT_TRUE(re.has_value()) << re.status().message();
  // Characters of every class the pattern cares about, plus random code points.
  const std::vector<uint32_t> pool = {
      'a',    'Z',    'q',     '1',    '9',     ' ',     ' ',    '\n',   '\r',
      '\t',   '\'',   's',     'S',    't',     'r',     'e',    'v',    'l',
      'L',    'd',    'm',     '/',    '.',     '!',     '-',    0xA0,   0x3000,
      0x2028, 0x85,   0x180E,  0x0301, 0x0308,  0x01C5,  0x02B0, 0x4E2D, 0x0661,
      0x2160, 0x00BD, 0x1F600, 0x200D, 0x13DF2, 0x11F04, 0x0915, 0x094D, 0xE9};
  uint64_t state = 12345;
  auto rnd = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  for (int iter = 0; iter < 20000; ++iter) {
    std::string text;
    int len = 1 + static_cast<int>(rnd() % 24);
    for (int k = 0; k < len; ++k) {
      uint32_t cp = (rnd() % 8 == 0) ? rnd() % 0x110000 : pool[rnd() % pool.size()];
      if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
      append_utf8(cp, &text);
    }
    ASSERT_EQ(pieces_fast(text), pieces_regex(**re, text)) << "text: " << text;
  }
}

}  // namespace
}  // namespace gptoss

namespace gptoss {
namespace {

// The heap merge (long pieces) and the quadratic merge (short pieces) must agree everywhere.
TEST(Bpe, HeapAndQuadraticMergesAgree) {
  auto t = Tokenizer::from_tiktoken_file(std::string(GPTOSS_SOURCE_DIR) +
                                         "/tests/data/o200k_base.tiktoken");
  ASSERT_TRUE(t.has_value()) << t.status().message();
  BpeVocab vocab;
  auto text = read_text_file(std::string(GPTOSS_SOURCE_DIR) + "/tests/data/o200k_base.tiktoken");
  ASSERT_TRUE(text.has_value());
  ASSERT_TRUE(parse_tiktoken_ranks(*text, "o200k", &vocab).is_ok());
  uint64_t state = 777;
  auto rnd = [&]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  const std::vector<std::string> words = {"a",        "b", "ab", "the", " ", "ing", "\xE4\xB8\xAD",
                                          "\xC3\xA9", "1", "xyz"};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string piece;
    size_t len = 1 + rnd() % 150;
    while (piece.size() < len) {
      if (rnd() % 4 == 0) {
        piece.push_back(static_cast<char>(rnd() % 256));
      } else {
        piece += words[rnd() % words.size()];
      }
    }
    std::string padded = piece + std::string(8, '\0');
    std::vector<uint32_t> q, h;
    bpe_encode_piece_quadratic(vocab, padded.data(), piece.size(), &q);
    bpe_encode_piece_heap(vocab, padded.data(), piece.size(), &h);
    ASSERT_EQ(q, h) << "piece of " << piece.size() << " bytes";
    std::string joined;
    for (uint32_t id : q) joined += vocab.bytes(id);
    ASSERT_EQ(joined, piece);
  }
}

}  // namespace
}  // namespace gptoss

namespace gptoss {
namespace {

TEST(StreamDecoder, UnknownIdsAddNothing) {
  StreamDecoder d(tok());
  EXPECT_EQ(d.push(999999), "");
  EXPECT_EQ(d.push(1428), "user");
  EXPECT_EQ(d.flush(), "");
  EXPECT_EQ(tok().decode({999999, 1428, 201089}), "user");
}

}  // namespace
}  // namespace gptoss
