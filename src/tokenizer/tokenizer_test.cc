// Unit tests for the o200k_harmony tokenizer. Expected ids come from tiktoken's o200k_harmony
// (tiktoken 0.14) on the same rank file; the pytest suite compares a large corpus.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(tok().encode("a\xE1\xA0\x8E" "b"), (std::vector<uint32_t>{64, 157, 254, 236, 65}));
  // 's with a long s is not a contraction for tiktoken.
  EXPECT_EQ(tok().encode("I'\xC5\xBF"), (std::vector<uint32_t>{40, 6, 70067}));
}

TEST(Tokenizer, SpecialTokensOnlyWhenAllowed) {
  const std::string text = "<|start|>user<|message|>Hi<|end|>";
  EXPECT_EQ(tok().encode(text), (std::vector<uint32_t>{27, 91, 5236, 91, 29, 1428, 27, 91, 3938, 91, 29,
                                                        12194, 27, 91, 419, 91, 29}));
  EXPECT_EQ(tok().encode_with_special(text), (std::vector<uint32_t>{200006, 1428, 200008, 12194, 200007}));
  EXPECT_EQ(tok().encode_with_special(text, {"<|start|>"}),
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
  // tiktoken.encode("a\ud800b\ud83d\ude00") == encode("a\ufffdb\U0001F600") == [64, 3251, 65, 84083]
  EXPECT_EQ(tok().encode("a\xED\xA0\x80" "b\xED\xA0\xBD\xED\xB8\x80"),
            (std::vector<uint32_t>{64, 3251, 65, 84083}));
  EXPECT_EQ(tok().encode("a\xFF" "b"), tok().encode("a\xEF\xBF\xBD" "b"));
}

TEST(Tokenizer, DecodeRoundTripAndUnknownIds) {
  std::string text = "Straße — naïve café 👩‍👩‍👧 مرحبا नमस्ते\n\n\tx = f(1234);";
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
  EXPECT_NE(t.status().message().find("ranks.tiktoken:3"), std::string::npos) << t.status().message();
  t = Tokenizer::from_tiktoken_text("QQ== 0\nQg== 0\n", "r");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.status().message().find("r:2: rank 0 appears twice"), std::string::npos) << t.status().message();
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
