// Model output -> API replies, checked against openai-harmony: the scripted engine emits the token
// ids of tests/data/server/harmony_goldens.json (made by tools/make_server_goldens.py), and each
// API's reply must hold exactly the messages openai-harmony parsed from those ids. The prompt the
// server renders for chat requests must equal openai-harmony's render token for token.
#include <fstream>
#include <sstream>

#include "server/server_test_util.h"

namespace gptoss::server::testing {
namespace {

ojson load_goldens() {
  std::ifstream f(std::string(GPTOSS_SOURCE_DIR) + "/tests/data/server/harmony_goldens.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return ojson::parse(ss.str());
}

struct Expected {
  std::string reasoning, content;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
};

// What the APIs should say, from openai-harmony's parsed messages.
Expected expected_from(const ojson& messages) {
  Expected e;
  for (const auto& m : messages) {
    std::string recipient = m["recipient"].is_null() ? "" : m["recipient"].get<std::string>();
    std::string channel = m["channel"].is_null() ? "" : m["channel"].get<std::string>();
    std::string text = m["text"];
    if (recipient.rfind("functions.", 0) == 0) {
      e.calls.emplace_back(recipient.substr(10), text);
    } else if (channel == "analysis") {
      e.reasoning += text;
    } else {
      e.content += text;
    }
  }
  return e;
}

class OutputGolden : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() { goldens_ = new ojson(load_goldens()); }
  static void TearDownTestSuite() { delete goldens_; }
  const ojson& golden() const { return (*goldens_)["outputs"][GetParam()]; }
  static ojson* goldens_;
};
ojson* OutputGolden::goldens_ = nullptr;

ojson chat_body(bool stream) {
  return ojson{{"model", "test-model"},
               {"messages", ojson::array({{{"role", "user"}, {"content", "hi"}}})},
               {"stream", stream},
               {"stream_options", {{"include_usage", true}}}};
}

TEST_P(OutputGolden, ChatCompletionMatchesHarmonyParse) {
  TestServer ts;
  std::vector<uint32_t> ids = golden()["tokens"].get<std::vector<uint32_t>>();
  ts.script_ids(ids);
  Expected want = expected_from(golden()["messages"]);
  auto r = ts.post("/v1/chat/completions", chat_body(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  const ojson& msg = j["choices"][0]["message"];
  EXPECT_EQ(msg.value("reasoning_content", ""), want.reasoning) << golden()["name"];
  EXPECT_EQ(msg.value("reasoning", ""), want.reasoning);
  if (want.content.empty() && !want.calls.empty()) {
    EXPECT_TRUE(msg["content"].is_null());
  } else {
    EXPECT_EQ(msg["content"], want.content);
  }
  ASSERT_EQ(msg.contains("tool_calls") ? msg["tool_calls"].size() : 0u, want.calls.size());
  for (size_t i = 0; i < want.calls.size(); ++i) {
    const ojson& c = msg["tool_calls"][i];
    EXPECT_EQ(c["type"], "function");
    EXPECT_EQ(c["function"]["name"], want.calls[i].first);
    EXPECT_EQ(c["function"]["arguments"], want.calls[i].second);
    EXPECT_EQ(c["id"].get<std::string>().rfind("call_", 0), 0u);
  }
  EXPECT_EQ(j["choices"][0]["finish_reason"], want.calls.empty() ? "stop" : "tool_calls");
  EXPECT_EQ(j["usage"]["completion_tokens"], ids.size());
  EXPECT_EQ(j["usage"]["prompt_tokens"], ts.engine.last_prompt().size());
}

TEST_P(OutputGolden, ChatStreamDeltasConcatenateToHarmonyParse) {
  TestServer ts;
  std::vector<uint32_t> ids = golden()["tokens"].get<std::vector<uint32_t>>();
  ts.script_ids(ids);
  Expected want = expected_from(golden()["messages"]);
  auto r = ts.post("/v1/chat/completions", chat_body(true));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  bool done = false;
  auto chunks = sse_payloads(r->body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks.front()["choices"][0]["delta"]["role"], "assistant");
  std::string reasoning, content;
  std::vector<std::pair<std::string, std::string>> calls;
  std::string finish;
  for (const auto& c : chunks) {
    if (c["choices"].empty()) {
      EXPECT_EQ(c["usage"]["completion_tokens"], ids.size());
      continue;
    }
    const ojson& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
    if (d.contains("tool_calls")) {
      for (const auto& tc : d["tool_calls"]) {
        size_t idx = tc["index"];
        if (tc.contains("id")) {
          ASSERT_EQ(idx, calls.size());
          calls.emplace_back(tc["function"]["name"], "");
        }
        ASSERT_LT(idx, calls.size());
        calls[idx].second += tc["function"]["arguments"].get<std::string>();
      }
    }
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(reasoning, want.reasoning);
  EXPECT_EQ(content, want.content);
  EXPECT_EQ(calls, want.calls);
  EXPECT_EQ(finish, want.calls.empty() ? "stop" : "tool_calls");
}

TEST_P(OutputGolden, ResponsesItemsMatchHarmonyParse) {
  TestServer ts;
  ts.script_ids(golden()["tokens"].get<std::vector<uint32_t>>());
  Expected want = expected_from(golden()["messages"]);
  auto r = ts.post("/v1/responses", ojson{{"model", "test-model"}, {"input", "hi"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["status"], "completed");
  std::string reasoning, content;
  std::vector<std::pair<std::string, std::string>> calls;
  for (const auto& item : j["output"]) {
    if (item["type"] == "reasoning") reasoning += item["content"][0]["text"].get<std::string>();
    if (item["type"] == "message") content += item["content"][0]["text"].get<std::string>();
    if (item["type"] == "function_call") calls.emplace_back(item["name"], item["arguments"]);
  }
  EXPECT_EQ(reasoning, want.reasoning);
  EXPECT_EQ(content, want.content);
  EXPECT_EQ(calls, want.calls);
}

TEST_P(OutputGolden, OllamaChatMatchesHarmonyParse) {
  TestServer ts;
  ts.script_ids(golden()["tokens"].get<std::vector<uint32_t>>());
  Expected want = expected_from(golden()["messages"]);
  auto r = ts.post("/api/chat", ojson{{"model", "test-model"}, {"stream", false},
                                      {"messages", ojson::array({{{"role", "user"},
                                                                  {"content", "hi"}}})}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["message"].value("thinking", ""), want.reasoning);
  EXPECT_EQ(j["message"]["content"], want.content);
  ASSERT_EQ(j["message"].contains("tool_calls") ? j["message"]["tool_calls"].size() : 0u,
            want.calls.size());
  for (size_t i = 0; i < want.calls.size(); ++i) {
    const ojson& f = j["message"]["tool_calls"][i]["function"];
    EXPECT_EQ(f["name"], want.calls[i].first);
    EXPECT_TRUE(f["arguments"].is_object());
    EXPECT_EQ(f["arguments"], ojson::parse(want.calls[i].second));
  }
  EXPECT_EQ(j["done"], true);
  EXPECT_EQ(j["done_reason"], "stop");
}

INSTANTIATE_TEST_SUITE_P(Harmony, OutputGolden, ::testing::Range(0, 5));

TEST(PromptGolden, ChatRequestsRenderAsOpenAIHarmony) {
  ojson goldens = load_goldens();
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>ok<|return|>");
  ASSERT_GE(goldens["prompts"].size(), 3u);
  for (const auto& p : goldens["prompts"]) {
    auto r = ts.post("/v1/chat/completions", p["request"]);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << p["name"] << ": " << r->body;
    EXPECT_EQ(ts.engine.last_prompt(), p["tokens"].get<std::vector<uint32_t>>()) << p["name"];
  }
}

}  // namespace
}  // namespace gptoss::server::testing
