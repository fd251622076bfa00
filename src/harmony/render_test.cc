// The renderer against openai-harmony's golden files (tests/data/harmony, copied from
// openai/harmony test-data/); inputs as described in tests/data/harmony/README.md.
#include "harmony/render.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "harmony/test_golden.h"

namespace gptoss::harmony {
namespace {

const Tokenizer& tokenizer() {
  static auto t = Tokenizer::builtin();
  return **t;
}

// Checks text and, like harmony's token-level tests, ids == encode_with_special(golden text).
void expect_render(const Conversation& c, const std::string& file, bool for_completion = true,
                   RenderOptions opts = {}) {
  std::string want = golden(file);
  auto text = for_completion ? render_text_for_completion(c, Role::kAssistant, opts)
                             : render_text_conversation(c, opts);
  ASSERT_TRUE(text.has_value()) << text.status().message();
  EXPECT_EQ(*text, want) << file;
  auto ids = for_completion ? render_for_completion(tokenizer(), c, Role::kAssistant, opts)
                            : render_conversation(tokenizer(), c, opts);
  ASSERT_TRUE(ids.has_value()) << ids.status().message();
  EXPECT_EQ(*ids, tokenizer().encode_with_special(want)) << file;
}

TEST(Render, SimpleConvo) {
  Conversation c{{Message::system(SystemContent{}), Message::make(Role::kUser, "What is 2 + 2?")}};
  expect_render(c, "test_simple_convo.txt");
}

TEST(Render, EffortLevels) {
  const char* files[] = {"test_simple_convo_low_effort.txt", "test_simple_convo_medium_effort.txt",
                         "test_simple_convo_high_effort.txt"};
  ReasoningEffort efforts[] = {ReasoningEffort::kLow, ReasoningEffort::kMedium,
                               ReasoningEffort::kHigh};
  for (int i = 0; i < 3; ++i) {
    SystemContent s;
    s.reasoning_effort = efforts[i];
    DeveloperContent d;
    d.instructions = "Answer the user's questions like a robot.";
    Conversation c{
        {Message::system(s), Message::developer(d),
         Message::make(Role::kUser, "What is the capital of the largest country in the world?")}};
    expect_render(c, files[i]);
  }
}

TEST(Render, DatesAndChannels) {
  SystemContent s;
  s.conversation_start_date = "2021-01-01";
  s.knowledge_cutoff = "2021-01";
  s.channel_config = ChannelConfig{{"analysis", "final"}, true};
  Conversation c{{Message::system(s), Message::make(Role::kUser, "What is 42 * pi?")}};
  expect_render(c, "test_reasoning_system_message_with_dates.txt");
}

TEST(Render, BrowserAndPython) {
  SystemContent s;
  s.conversation_start_date = "2025-06-28";
  s.with_tools(ToolNamespace::python()).with_tools(ToolNamespace::browser());
  expect_render(Conversation{{Message::system(s)}}, "test_browser_and_python_tool.txt");
}

TEST(Render, BrowserAndFunctionTool) {
  SystemContent s;
  s.conversation_start_date = "2025-06-28";
  s.with_tools(ToolNamespace::browser());
  DeveloperContent d;
  d.with_function_tools(
      {{"lookup_weather",
        "Use this tool to lookup the weather in a given location. Call it with the parameter "
        "'location', can be any textual description of a location.",
        ojson::parse(
            R"({"type":"object","properties":{"location":{"type":"string"}},"required":["location"]})")}});
  expect_render(Conversation{{Message::system(s), Message::developer(d)}},
                "test_browser_and_function_tool.txt");
}

TEST(Render, DroppingCotByDefault) {
  Conversation c{
      {Message::make(Role::kUser, "What is 2 + 2?"),
       Message::make(Role::kAssistant,
                     "User asks: \u201cWhat is 2 + 2?\u201d Simple arithmetic. Provide answer.")
           .with_channel("analysis"),
       Message::make(Role::kAssistant, "2 + 2 equals 4.").with_channel("final"),
       Message::make(Role::kUser, "What about 9 / 2?")}};
  expect_render(c, "test_dropping_cot_by_default.txt");
}

TEST(Render, PreserveCot) {
  Conversation c{{Message::make(Role::kUser, "What is 2 + 2?"),
                  Message::make(Role::kAssistant,
                                "User asks a simple question: \"What is 2 + 2?\" The answer: 4.")
                      .with_channel("analysis"),
                  Message::make(Role::kAssistant, "2 + 2 equals 4.").with_channel("final"),
                  Message::make(Role::kUser, "What about 9 / 2?")}};
  expect_render(c, "test_preserve_cot.txt", true, RenderOptions{DropAnalysis::kNone});
}

TEST(Render, DoesNotDropIfOngoingAnalysis) {
  Conversation c{
      {Message::make(Role::kUser, "What is the weather in SF?"),
       Message::make(
           Role::kAssistant,
           "User asks: \u201cWhat is the weather in SF?\u201d We need to use lookup_weather tool.")
           .with_channel("analysis"),
       Message::make(Role::kAssistant, "{\"location\": \"San Francisco\"}")
           .with_channel("commentary")
           .with_recipient("functions.lookup_weather")
           .with_content_type("<|constrain|>json"),
       Message::make(Role::kTool, "{\"temperature\": 20, \"description\": \"sunny\"}")
           .with_name("functions.lookup_weather")}};
  expect_render(c, "test_does_not_drop_if_ongoing_analysis.txt");
  // vLLM's rule keeps the analysis of the turn in progress too.
  expect_render(c, "test_does_not_drop_if_ongoing_analysis.txt", true,
                RenderOptions{DropAnalysis::kBeforeLastFinal});
}

TEST(Render, KeepAnalysisBetweenFinals) {
  Conversation c{{Message::make(Role::kUser, "What is 2 + 2?"),
                  Message::make(Role::kAssistant, "thinking 2+2").with_channel("analysis"),
                  Message::make(Role::kAssistant, "4").with_channel("final"),
                  Message::make(Role::kUser, "What is 3 + 5?"),
                  Message::make(Role::kAssistant, "thinking 3+5").with_channel("analysis"),
                  Message::make(Role::kAssistant, "8").with_channel("final")}};
  expect_render(c, "test_keep_analysis_between_finals.txt", false);
  // The vLLM rule drops both analyses (everything before the last final).
  auto text = render_text_conversation(c, RenderOptions{DropAnalysis::kBeforeLastFinal});
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->find("thinking"), std::string::npos);
}

TEST(Render, ToolMessageWithoutNameIsAnError) {
  Conversation c{{Message::make(Role::kTool, "{}")}};
  auto r = render_text_for_completion(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("author name"), std::string::npos);
}

TEST(Render, TrainingEndsWithReturn) {
  Conversation c{{Message::make(Role::kUser, "hi"),
                  Message::make(Role::kAssistant, "hello").with_channel("final")}};
  auto ids = render_for_training(tokenizer(), c);
  ASSERT_TRUE(ids.has_value());
  EXPECT_EQ(ids->back(), tok::kReturn);
}

TEST(Render, ResponseFormatsEndTheDeveloperMessage) {
  // The layout docs/format.md gives for structured output.
  DeveloperContent d;
  d.instructions = "You are a helpful shopping assistant";
  d.response_formats.push_back(
      {"shopping_list", "A list",
       ojson::parse(
           R"({"properties":{"items":{"type":"array","description":"entries on the shopping list","items":{"type":"string"}}},"type":"object"})")});
  auto text = render_text_conversation(Conversation{{Message::developer(d)}});
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(
      *text,
      "<|start|>developer<|message|># Instructions\n\nYou are a helpful shopping assistant\n\n"
      "# Response Formats\n\n## shopping_list\n\n// A list\n"
      R"({"properties":{"items":{"type":"array","description":"entries on the shopping list","items":{"type":"string"}}},"type":"object"})"
      "<|end|>");
}

TEST(ConversationJson, WriteThenReadRendersTheSame) {
  SystemContent s;
  s.conversation_start_date = "2025-01-02";
  s.reasoning_effort.reset();
  s.with_tools(ToolNamespace::browser());
  DeveloperContent d;
  d.instructions = "Be nice";
  d.with_function_tools(
      {{"f", "does f", ojson::parse(R"({"type":"object","properties":{"b":{},"a":{}}})")}});
  d.response_formats.push_back({"fmt", std::nullopt, ojson::parse(R"({"type":"string"})")});
  Conversation c{
      {Message::system(s), Message::developer(d), Message::make(Role::kUser, "hi").with_name("u"),
       Message::make(Role::kTool, "r").with_name("functions.f").with_channel("commentary")}};
  auto back = conversation_from_json(ojson::parse(conversation_to_json(c).dump()));
  ASSERT_TRUE(back.has_value()) << back.status().message();
  auto a = render_text_for_completion(c), b = render_text_for_completion(*back);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(*a, *b);
  EXPECT_LT(a->find("b?: any"), a->find("a?: any"));  // property order survives the round trip
}

TEST(ConversationJson, ReadsHarmonyShapeAndReportsBadFields) {
  auto j = ojson::parse(
      R"({"messages":[{"role":"system","name":null,"content":[{"type":"system_content","model_identity":"X","reasoning_effort":"High","channel_config":{"valid_channels":["final"],"channel_required":false}}]},)"
      R"({"role":"user","content":"hi"}]})");
  auto c = conversation_from_json(j);
  ASSERT_TRUE(c.has_value()) << c.status().message();
  auto text = render_text_for_completion(*c);
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(*text,
            "<|start|>system<|message|>X\n\nReasoning: high\n\n# Valid channels: final.<|end|>"
            "<|start|>user<|message|>hi<|end|><|start|>assistant");
  auto bad =
      conversation_from_json(ojson::parse(R"({"messages":[{"role":"robot","content":"x"}]})"));
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("messages[0].role"), std::string::npos);
}

}  // namespace
}  // namespace gptoss::harmony
