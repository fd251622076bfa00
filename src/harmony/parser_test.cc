// The streaming parser against openai-harmony's golden token files and the message lists its
// tests expect (tests/data/harmony/README.md), plus malformed streams (harmony-and-apis.md §5.3).
#include "harmony/parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "harmony/render.h"
#include "harmony/test_golden.h"

namespace gptoss::harmony {
namespace {

std::vector<uint32_t> golden_ids(const std::string& name) {
  std::istringstream in(golden(name));
  std::vector<uint32_t> ids;
  uint32_t x;
  while (in >> x) ids.push_back(x);
  return ids;
}

const Tokenizer& tokenizer() {
  static auto t = Tokenizer::builtin();
  return **t;
}

std::vector<uint32_t> enc(const std::string& s) { return tokenizer().encode_with_special(s); }

TEST(Parser, SimpleReasoningResponse) {
  auto r = parse_completion(tokenizer(), golden_ids("test_simple_reasoning_response.txt"));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].channel, "analysis");
  EXPECT_EQ(r.messages[0].text(),
            "User asks: \"What is 2 + 2?\" Simple arithmetic. Provide answer.");
  EXPECT_EQ(r.messages[1].channel, "final");
  EXPECT_EQ(r.messages[1].text(), "2 + 2 = 4.");
  EXPECT_TRUE(r.problems.empty());
}

TEST(Parser, SimpleToolCallRecipientBeforeAndAfterChannel) {
  auto r = parse_completion(tokenizer(), golden_ids("test_simple_tool_call.txt"));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].recipient, "lookup_weather");
  EXPECT_EQ(r.messages[1].channel, "analysis");
  EXPECT_EQ(r.messages[1].content_type, "code");
  EXPECT_EQ(r.messages[1].text(), "{\"location\": \"Tokyo\"}");
  auto r2 = parse_completion(tokenizer(), enc("<|channel|>analysis<|message|>x<|end|><|start|>"
                                              "assistant<|channel|>analysis to=lookup_weather "
                                              "code<|message|>{\"location\": \"Tokyo\"}"));
  ASSERT_EQ(r2.messages.size(), 2u);
  EXPECT_EQ(r2.messages[1].recipient, "lookup_weather");
  EXPECT_EQ(r2.messages[1].content_type, "code");
  EXPECT_TRUE(r2.problems.empty());
}

TEST(Parser, StreamableParserGoldenWithEvents) {
  Parser p(tokenizer());
  std::vector<ParseEvent> ev;
  for (uint32_t t : enc(golden("test_streamable_parser.txt"))) p.push(t, ev);
  p.finish(ev);
  ASSERT_EQ(p.messages().size(), 3u);
  const auto& call = p.messages()[1];
  EXPECT_EQ(call.recipient, "browser.search");
  EXPECT_EQ(call.channel, "commentary");
  EXPECT_EQ(call.content_type, "code");
  const auto& result = p.messages()[2];
  EXPECT_EQ(result.role, Role::kTool);
  EXPECT_EQ(result.name, "browser.search");
  EXPECT_EQ(result.recipient, "assistant");
  EXPECT_EQ(result.text(), "{\"result\": \"https://openai.com/\"}");
  // Events: starts, deltas that add up to the contents, ends; no stop (no <|return|>).
  int starts = 0, ends = 0, calls = 0;
  std::string all;
  for (const auto& e : ev) {
    starts += e.kind == ParseEvent::Kind::kMessageStart;
    ends += e.kind == ParseEvent::Kind::kMessageEnd;
    calls += e.kind == ParseEvent::Kind::kStop && e.stop == StopReason::kCall;
    if (e.kind == ParseEvent::Kind::kContentDelta) all += e.text;
    EXPECT_NE(e.kind, ParseEvent::Kind::kProblem) << e.text;
  }
  EXPECT_EQ(starts, 3);
  EXPECT_EQ(ends, 3);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(all, p.messages()[0].text() + call.text() + result.text());
}

TEST(Parser, ToolResponseWithoutInitialRole) {
  auto r =
      parse_completion(tokenizer(), enc(golden("test_tool_response_parsing.txt")), std::nullopt);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, Role::kTool);
  EXPECT_EQ(r.messages[0].name, "browser.search");
  EXPECT_EQ(r.messages[0].channel, "commentary");
  EXPECT_EQ(r.stop, StopReason::kEndOfStream);
}

TEST(Parser, ConstrainWithoutSpaceAndStopOnCall) {
  Parser p(tokenizer());
  std::vector<ParseEvent> ev;
  for (uint32_t t : enc("<|channel|>commentary "
                        "to=functions.get_weather<|constrain|>json<|message|>{\"a\":1}<|call|>"))
    p.push(t, ev);
  ASSERT_EQ(p.messages().size(), 1u);
  EXPECT_EQ(p.messages()[0].recipient, "functions.get_weather");
  EXPECT_EQ(p.messages()[0].content_type, "<|constrain|>json");
  EXPECT_EQ(p.stop_reason(), StopReason::kCall);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().kind, ParseEvent::Kind::kStop);
}

TEST(Parser, DeltasNeverSplitUtf8) {
  // "日本" is split over byte-level tokens; every delta must be valid UTF-8 on its own.
  std::string text = "\xE6\x97\xA5\xE6\x9C\xAC\xF0\x9F\x98\x80 ok";
  std::vector<uint32_t> ids = enc("<|channel|>final<|message|>");
  for (unsigned char c : text)
    ids.push_back(*tokenizer().token_id(std::string(1, static_cast<char>(c))));
  Parser p(tokenizer());
  std::string all;
  for (uint32_t t : ids)
    for (const auto& e : p.push(t))
      if (e.kind == ParseEvent::Kind::kContentDelta) {
        EXPECT_TRUE(e.text == "\xE6\x97\xA5" || e.text == "\xE6\x9C\xAC" ||
                    e.text == "\xF0\x9F\x98\x80" || e.text.size() == 1)
            << e.text;
        all += e.text;
      }
  p.finish();
  EXPECT_EQ(all, text);
  EXPECT_EQ(p.messages()[0].text(), text);
}

TEST(Parser, MalformedStreamsKeepTheirText) {
  // A refusal without any header (harmony issue #80): the text is kept, a problem reported.
  auto r = parse_completion(tokenizer(), enc("I must refuse.<|end|>"));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].text(), "I must refuse.");
  EXPECT_FALSE(r.problems.empty());
  // <|channel|> after <|end|> with no <|start|>assistant.
  r = parse_completion(
      tokenizer(),
      enc("<|channel|>analysis<|message|>a<|end|><|channel|>final<|message|>b<|return|>"));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].channel, "final");
  EXPECT_EQ(r.messages[1].text(), "b");
  EXPECT_EQ(r.problems.size(), 1u);
  // Text after a terminator, outside any message.
  r = parse_completion(tokenizer(), enc("<|channel|>final<|message|>a<|end|>comment<|end|>"));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].text(), "comment");
  // A lone <|constrain|>json is a content type (harmony PR #144), not a recipient.
  r = parse_completion(tokenizer(), enc("<|channel|>final <|constrain|>json<|message|>{}"));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.messages[0].recipient.has_value());
  EXPECT_EQ(r.messages[0].content_type, "<|constrain|>json");
  // A repeated channel does not end up in the recipient (vLLM PR #31677).
  r = parse_completion(tokenizer(),
                       enc("<|channel|>commentary to=functions.bash<|channel|>commentary "
                           "<|constrain|>json<|message|>{}"));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].recipient, "functions.bash");
  EXPECT_FALSE(r.problems.empty());
  // Truncated inside a header (max_tokens): reported, nothing invented.
  r = parse_completion(
      tokenizer(), enc("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>fin"));
  EXPECT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.problems.empty());
  // A header with a broken UTF-8 byte is reported (harmony raises "could not decode header").
  std::vector<uint32_t> bad = enc("<|channel|>final");
  bad.push_back(*tokenizer().token_id("\xE6"));
  for (uint32_t t : enc("<|message|>ok")) bad.push_back(t);
  r = parse_completion(tokenizer(), bad);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].text(), "ok");
  EXPECT_FALSE(r.problems.empty());
  // An id that is no token becomes U+FFFD; the text around it stays.
  std::vector<uint32_t> ids = enc("<|channel|>final<|message|>a");
  ids.push_back(4000000);
  for (uint32_t t : enc("b")) ids.push_back(t);
  r = parse_completion(tokenizer(), ids);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].text(),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(Parser, RoundTripOfRenderedAssistantMessage) {
  Message m = Message::make(Role::kAssistant, "{\"x\": [1, 2]}")
                  .with_channel("commentary")
                  .with_recipient("functions.f")
                  .with_content_type("<|constrain|>json");
  auto ids = render_message(tokenizer(), m);
  ASSERT_TRUE(ids.has_value());
  auto r = parse_completion(tokenizer(), *ids, std::nullopt);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(message_to_json(r.messages[0]), message_to_json(m));
  EXPECT_TRUE(r.problems.empty());
}

TEST(Parser, ClassifyRecipientBeforeChannel) {
  auto kind_of = [](const std::string& text) {
    auto r = parse_completion(tokenizer(), enc(text));
    EXPECT_EQ(r.messages.size(), 1u) << text;
    const Message& m = r.messages.at(0);
    return classify(MessageHeader{m.role, m.name, m.recipient, m.channel, m.content_type});
  };
  EXPECT_EQ(kind_of("<|channel|>analysis<|message|>x<|end|>"), MessageKind::kReasoning);
  EXPECT_EQ(kind_of("<|channel|>analysis to=browser.search<|message|>{}<|call|>"),
            MessageKind::kBuiltinCall);
  EXPECT_EQ(kind_of(" to=functions.f<|channel|>commentary json<|message|>{}<|call|>"),
            MessageKind::kFunctionCall);
  EXPECT_EQ(kind_of("<|channel|>commentary<|message|>Let me check.<|end|>"),
            MessageKind::kPreamble);
  EXPECT_EQ(kind_of("<|channel|>final<|message|>4<|return|>"), MessageKind::kFinal);
  auto r = parse_completion(
      tokenizer(), enc("<|start|>functions.f to=assistant<|channel|>commentary<|message|>1<|end|>"),
      std::nullopt);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(classify(MessageHeader{r.messages[0].role, r.messages[0].name, r.messages[0].recipient,
                                   r.messages[0].channel, r.messages[0].content_type}),
            MessageKind::kToolResult);
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char b = s[i];
    int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Random token soup (formatting tokens, header words, lone UTF-8 bytes, unknown ids): the parser
// never fails, every start has its end, deltas are whole characters adding up to the contents.
TEST(Parser, RandomStreamsKeepInvariants) {
  std::vector<uint32_t> pool = {tok::kStart,     tok::kEnd,    tok::kMessage, tok::kChannel,
                                tok::kConstrain, tok::kReturn, tok::kCall,    199999,
                                200014,          4000000};
  for (const char* w : {"assistant", "analysis", "final", "commentary", " to=functions.f", " json",
                        "user", "hello", " world", "\xE6\x97\xA5", "\xF0\x9F\x98\x80"})
    for (uint32_t t : tokenizer().encode(w)) pool.push_back(t);
  for (int b : {0x80, 0xBF, 0xC3, 0xE6, 0xF0, 0xFF, 0x20})
    pool.push_back(*tokenizer().token_id(std::string(1, static_cast<char>(b))));
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; ++iter) {
    Parser p(tokenizer(),
             ParserOptions{iter % 3 == 0 ? std::nullopt : std::optional<Role>(Role::kAssistant)});
    std::vector<ParseEvent> ev;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) p.push(pool[rng() % pool.size()], ev);
    p.finish(ev);
    size_t ends = 0;
    bool open = false;
    std::string text;
    for (const auto& e : ev) {
      switch (e.kind) {
        case ParseEvent::Kind::kMessageStart:
          ASSERT_FALSE(open);
          open = true;
          text.clear();
          break;
        case ParseEvent::Kind::kContentDelta:
          ASSERT_TRUE(open);
          ASSERT_TRUE(valid_utf8(e.text));
          text += e.text;
          break;
        case ParseEvent::Kind::kMessageEnd:
          ASSERT_TRUE(open);
          ASSERT_LT(ends, p.messages().size());
          EXPECT_EQ(p.messages()[ends].text(), text);
          open = false;
          ++ends;
          break;
        default:
          break;
      }
    }
    EXPECT_FALSE(open);
    EXPECT_EQ(ends, p.messages().size());
    EXPECT_EQ(p.state(), Parser::State::kExpectStart);
    EXPECT_NE(p.stop_reason(), StopReason::kNone);
  }
}

}  // namespace
}  // namespace gptoss::harmony
