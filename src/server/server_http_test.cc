// HTTP behaviour of the server over a scripted engine: stop strings, length, context and queue
// limits, client disconnects, auth, error objects, forced tool calls, the Responses event
// sequence and store, metrics.
#include <atomic>

#include <fmt/format.h>

#include "server/api_error.h"
#include "server/chat_request.h"
#include "server/server_test_util.h"

namespace gptoss::server::testing {
namespace {

ojson chat(const std::string& user, ojson extra = ojson::object()) {
  ojson b = {{"model", "test-model"},
             {"messages", ojson::array({{{"role", "user"}, {"content", user}}})}};
  b.update(extra);
  return b;
}

bool wait_for(const std::function<bool()>& cond, int ms = 3000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

// Every factory's status, type, param, code and Retry-After, as OpenAI's API documents them.
TEST(ApiErrorShape, EachFactoryFillsEveryField) {
  struct Case {
    ApiError e;
    int status;
    const char* type;
    ojson param, code;
    int retry_after_s;
  };
  const Case cases[] = {
      {ApiError::invalid("temperature", "m1"), 400, "invalid_request_error", "temperature", nullptr, 0},
      {ApiError::invalid("tool_choice", "m2", "invalid_value"), 400, "invalid_request_error", "tool_choice",
       "invalid_value", 0},
      {ApiError::not_found("m3"), 404, "invalid_request_error", nullptr, nullptr, 0},
      {ApiError::not_found("m4", "model", "model_not_found"), 404, "invalid_request_error", "model",
       "model_not_found", 0},
      {ApiError::unauthorized("m5"), 401, "invalid_request_error", nullptr, "invalid_api_key", 0},
      {ApiError::overloaded("m6", 7), 429, "rate_limit_error", nullptr, "rate_limit_exceeded", 7},
      {ApiError::internal("m7"), 500, "server_error", nullptr, nullptr, 0},
  };
  int i = 1;
  for (const auto& c : cases) {
    SCOPED_TRACE(i);
    EXPECT_EQ(c.e.status, c.status);
    EXPECT_EQ(c.e.retry_after_s, c.retry_after_s);
    const ojson want = {{"error", {{"message", fmt::format("m{}", i)}, {"type", c.type}, {"param", c.param},
                                   {"code", c.code}}}};
    EXPECT_EQ(c.e.to_openai_json(), want);
    EXPECT_EQ(c.e.to_ollama_json(), (ojson{{"error", fmt::format("m{}", i)}}));
    ++i;
  }
}

TEST(RoleNames, RoundTripAndRejectOthers) {
  for (Role r : {Role::kSystem, Role::kDeveloper, Role::kUser, Role::kAssistant, Role::kTool}) {
    EXPECT_EQ(role_from_name(role_name(r)), r) << role_name(r);
  }
  EXPECT_STREQ(role_name(Role::kDeveloper), "developer");
  for (const char* bad : {"", "wizard", "Tool", "users", "function"}) {
    EXPECT_EQ(role_from_name(bad), std::nullopt) << bad;
  }
}

TEST(ServerHttp, StopStringTruncatesContentAndCancelsTheEngine) {
  TestServer ts;
  ts.engine.set_delay(std::chrono::milliseconds(5));
  ts.script_text("<|channel|>final<|message|>Hello world. Goodbye now, and more text follows "
                 "here so the engine is still running.<|return|>");
  auto r = ts.post("/v1/chat/completions", chat("hi", {{"stop", "Goodbye"}}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello world. ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(ts.engine.cancels(), 1);
}

TEST(ServerHttp, StopStringAcrossStreamDeltas) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>one two three four<|return|>");
  auto r = ts.post("/v1/chat/completions", chat("hi", {{"stop", ojson::array({"e fo", "zzz"})},
                                                      {"stream", true}}));
  ASSERT_TRUE(r);
  std::string content;
  for (const auto& c : sse_payloads(r->body)) {
    const ojson& d = c["choices"][0]["delta"];
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  EXPECT_EQ(content, "one two thre");
}

TEST(ServerHttp, MaxTokensGivesLength) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>a b c d e f g h<|return|>");
  auto r = ts.post("/v1/chat/completions", chat("hi", {{"max_completion_tokens", 5}}));
  ASSERT_TRUE(r);
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "a b");
}

TEST(ServerHttp, PromptPlusMaxTokensBeyondContextIs400) {
  TestServer ts({}, /*context_length=*/256);
  auto r = ts.post("/v1/chat/completions", chat("hi", {{"max_tokens", 1000}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "context_length_exceeded");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("maximum context length is 256"),
            std::string::npos);
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
}

TEST(ServerHttp, FullServerAnswers429WithRetryAfter) {
  ServerConfig cfg;
  cfg.max_active_requests = 1;
  cfg.retry_after_s = 3;
  TestServer ts(cfg);
  ts.engine.set_delay(std::chrono::milliseconds(20));
  ts.script_text("<|channel|>final<|message|>" + std::string(200, 'x') + "<|return|>");
  std::thread slow([&] {
    httplib::Client c("127.0.0.1", ts.server->port());
    c.set_read_timeout(30);
    (void)c.Post("/v1/chat/completions", chat("hi").dump(), "application/json");
  });
  ASSERT_TRUE(wait_for([&] { return ts.engine.live() == 1; }));
  auto r = ts.post("/v1/chat/completions", chat("hi"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "3");
  EXPECT_EQ(ojson::parse(r->body)["error"]["code"], "rate_limit_exceeded");
  ts.engine.set_delay(std::chrono::milliseconds(0));
  slow.join();
}

TEST(ServerHttp, EngineQueueFullIs429) {
  TestServer ts({}, 4096, /*max_live=*/0);
  auto r = ts.post("/v1/chat/completions", chat("hi"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
}

TEST(ServerHttp, ClientDisconnectCancelsTheSequence) {
  TestServer ts;
  ts.engine.set_delay(std::chrono::milliseconds(20));
  ts.script_text("<|channel|>final<|message|>" + std::string(400, 'y') + "<|return|>");
  httplib::Client c("127.0.0.1", ts.server->port());
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat("hi", {{"stream", true}}).dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  auto r = c.send(req);
  EXPECT_GE(chunks, 3);
  c.stop();
  EXPECT_TRUE(wait_for([&] { return ts.engine.cancels() == 1 && ts.engine.live() == 0; }));
  auto m = ts.client->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("gptoss_client_disconnects_total 1"), std::string::npos) << m->body;
}

TEST(ServerHttp, DisconnectSeenWhileTheModelWritesNothingVisible) {
  TestServer ts;
  ts.engine.set_delay(std::chrono::milliseconds(20));
  // All header: no delta to send, so only the heartbeat can find the closed connection.
  ts.script_text("<|channel|>" + std::string(400, 'q'));
  httplib::Client c("127.0.0.1", ts.server->port());
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat("hi", {{"stream", true}}).dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return false; };
  (void)c.send(req);
  c.stop();
  EXPECT_TRUE(wait_for([&] { return ts.engine.cancels() == 1 && ts.engine.live() == 0; }));
}

TEST(ServerHttp, NonStreamingClientThatGivesUpCancelsTheSequence) {
  TestServer ts;
  ts.engine.set_delay(std::chrono::milliseconds(20));
  ts.script_text("<|channel|>final<|message|>" + std::string(400, 'z') + "<|return|>");
  httplib::Client c("127.0.0.1", ts.server->port());
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = chat("hi").dump();
  req.set_header("Content-Type", "application/json");
  std::string got;
  // Hang up at the first bytes (the server's keep-alive whitespace).
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    got.append(d, n);
    return false;
  };
  auto r = c.send(req);
  EXPECT_EQ(got, " ");
  c.stop();
  EXPECT_TRUE(wait_for([&] { return ts.engine.cancels() == 1 && ts.engine.live() == 0; }));
}

TEST(ServerHttp, BearerAuthOnEveryRouteButHealth) {
  ServerConfig cfg;
  cfg.api_key = "sekret";
  TestServer ts(cfg);
  ts.script_text("<|channel|>final<|message|>ok<|return|>");
  auto h = ts.client->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  for (const char* path : {"/v1/models", "/metrics", "/api/tags", "/api/version"}) {
    auto r = ts.client->Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
  }
  auto none = ts.post("/v1/chat/completions", chat("hi"));
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(ojson::parse(none->body)["error"]["code"], "invalid_api_key");
  auto wrong = ts.post("/v1/chat/completions", chat("hi"), {{"Authorization", "Bearer sekreT"}});
  EXPECT_EQ(wrong->status, 401);
  auto ok = ts.post("/v1/chat/completions", chat("hi"), {{"Authorization", "Bearer sekret"}});
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto ollama = ts.post("/api/chat", ojson::object());
  EXPECT_EQ(ollama->status, 401);
  EXPECT_TRUE(ojson::parse(ollama->body)["error"].is_string());
}

// The message-list checks the chat and Ollama parsers share, each with its own wording.
TEST(ServerHttp, BadMessageListsNameTheField) {
  TestServer ts;
  struct Case {
    const char* path;
    const char* messages;
    std::string error;  // OpenAI: error.message; Ollama: error
  };
  const Case cases[] = {
      {"/v1/chat/completions", "[]", "'messages' must be a non-empty array"},
      {"/v1/chat/completions", "[5]", "'messages[0]' must be an object"},
      {"/v1/chat/completions", R"([{"role":"user","content":"x"},{"role":"wizard"}])",
       "unknown role 'wizard' (system, developer, user, assistant, tool)"},
      {"/api/chat", "[]", "'messages' must be a non-empty array"},
      {"/api/chat", R"([{"role":"user","content":"x"},"hi"])", "'messages[1]' must be an object"},
      {"/api/chat", R"([{"role":"wizard"}])", "unknown role 'wizard'"},
  };
  for (const auto& c : cases) {
    const ojson body = {{"model", "test-model"}, {"messages", ojson::parse(c.messages)}};
    auto r = ts.post(c.path, body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << c.path << " " << c.messages;
    const ojson j = ojson::parse(r->body);
    const bool openai = std::string(c.path).starts_with("/v1/");
    EXPECT_EQ(openai ? j["error"]["message"] : j["error"], c.error) << c.path << " " << r->body;
  }
}

struct BadCase {
  std::string path;
  std::string body;
  int status;
  std::string param;
};

TEST(ServerHttp, BadRequestsGetOpenAIErrorObjects) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>ok<|return|>");
  std::vector<BadCase> cases = {
      {"/v1/chat/completions", "{not json", 400, ""},
      {"/v1/chat/completions", "[1,2]", 400, ""},
      // A number out of double range (found by fuzz_server_request): a 400, not an escaped
      // nlohmann out_of_range exception.
      {"/v1/chat/completions", R"({"model":1e999,"messages":[]})", 400, ""},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})", 400, "model"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":"hi"})", 400, "messages"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[]})", 400, "messages"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"wizard","content":"x"}]})", 400, "messages[0].role"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":5}]})", 400, "messages[0].content"},
      {"/v1/chat/completions", R"({"model":"nope","messages":[{"role":"user","content":"x"}]})", 404, "model"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"temperature":5})", 400, "temperature"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", 400, "temperature"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"max_tokens":0})", 400, "max_tokens"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", 400, "max_tokens"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"top_p":0})", 400, "top_p"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"})", 400, "reasoning_effort"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"stream":"yes"})", 400, "stream"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"n":2})", 400, "n"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name"}}]})", 400, "tools[0].function.name"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"ghost"}}})", 400, "tool_choice"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"tool","tool_call_id":"c1","content":"x"}]})", 400, "messages[0].tool_call_id"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})", 400, "response_format.type"},
      {"/v1/responses", R"({"model":"test-model"})", 400, "input"},
      {"/v1/responses", R"({"model":"test-model","input":[{"type":"function_call_output","call_id":"zz","output":"1"}]})", 400, "input[0].call_id"},
      {"/v1/responses", R"({"model":"test-model","input":"x","previous_response_id":"resp_missing"})", 404, "previous_response_id"},
      {"/v1/responses", R"({"model":"test-model","input":"x","reasoning":{"effort":"max"}})", 400, "reasoning.effort"},
      {"/v1/responses", R"({"model":"test-model","input":"x","text":{"format":{"type":"xml"}}})", 400, "text.format.type"},
      {"/v1/responses", R"({"model":"test-model","input":[{"type":"message","role":"tool","content":"x"}]})", 400, "input[0].role"},
      {"/v1/responses", R"({"model":"test-model","input":[{"type":"message","role":"wizard","content":"x"}]})", 400, "input[0].role"},
      {"/v1/responses", R"({"model":"test-model","input":"x","tool_choice":"sometimes"})", 400, "tool_choice"},
      {"/v1/chat/completions", R"({"model":"test-model","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})", 400, "tool_choice"},
      {"/v1/completions", R"({"model":"test-model"})", 400, "prompt"},
      {"/v1/completions", R"({"model":"test-model","prompt":"x","max_tokens":-3})", 400, "max_tokens"},
  };
  for (const auto& c : cases) {
    auto r = ts.client->Post(c.path.c_str(), c.body, "application/json");
    ASSERT_TRUE(r) << c.body;
    EXPECT_EQ(r->status, c.status) << c.body << " -> " << r->body;
    ojson j = ojson::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r->body;
    ASSERT_TRUE(j.contains("error")) << r->body;
    const ojson& e = j["error"];
    EXPECT_TRUE(e["message"].is_string());
    EXPECT_TRUE(e["type"].is_string());
    EXPECT_TRUE(e.contains("code"));
    if (c.param.empty()) {
      EXPECT_TRUE(e["param"].is_null()) << r->body;
    } else {
      EXPECT_EQ(e["param"], c.param) << c.body << " -> " << r->body;
    }
  }
  EXPECT_EQ(ts.engine.live(), 0);
}

TEST(ServerHttp, DeeplyNestedJsonIsRefusedNotACrash) {
  TestServer ts;
  const int n = 100000;
  std::string schema;
  for (int i = 0; i < n; ++i) schema += R"({"type":"array","items":)";
  schema += R"({"type":"string"})" + std::string(n, '}');
  std::string body = R"({"model":"test-model","messages":[{"role":"user","content":"x"}],)"
                     R"("tools":[{"type":"function","function":{"name":"f","parameters":)" +
                     schema + "}}]}";
  auto r = ts.client->Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(ojson::parse(r->body)["error"]["message"].get<std::string>().find("nested"),
            std::string::npos);
  // Strings with brackets and escaped quotes do not count as nesting.
  ojson ok = chat(std::string(100, '[') + "\"{{{" + std::string(100, '{'));
  EXPECT_EQ(ts.post("/v1/chat/completions", ok)->status, 200);
  EXPECT_EQ(ts.client->Get("/health")->status, 200);
}

TEST(ServerHttp, SecondServerOnTheSamePortFailsToBind) {
  TestServer ts;
  ServerConfig cfg;
  cfg.port = ts.server->port();
  Server other(cfg, ts.engine, ts.tokenizer);
  Status st = other.bind();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(std::to_string(cfg.port)), std::string::npos) << st.message();
}

TEST(ServerHttp, BodyLimitAndUnknownRoutes) {
  ServerConfig cfg;
  cfg.max_body_bytes = 1000;
  TestServer ts(cfg);
  auto big = ts.post("/v1/chat/completions", chat(std::string(5000, 'a')));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(ojson::parse(big->body)["error"]["code"], "request_too_large");
  auto nf = ts.client->Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(ojson::parse(nf->body)["error"]["message"].is_string());
}

TEST(ServerHttp, NamedToolChoiceForcesTheCall) {
  TestServer ts;
  auto ids = ts.tokenizer->encode_with_special("{\"city\":\"Rome\"}<|call|>");
  ts.script_ids(ids);
  ojson tools = ojson::array({{{"type", "function"},
                               {"function", {{"name", "get_weather"},
                                             {"parameters", {{"type", "object"}}}}}}});
  auto r = ts.post("/v1/chat/completions",
                   chat("weather?", {{"tools", tools},
                                     {"tool_choice", {{"type", "function"},
                                                      {"function", {{"name", "get_weather"}}}}}}));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  const ojson& calls = j["choices"][0]["message"]["tool_calls"];
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"city\":\"Rome\"}");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  auto forced = ts.tokenizer->encode_with_special(
      "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>");
  auto prompt = ts.engine.last_prompt();
  ASSERT_GE(prompt.size(), forced.size());
  EXPECT_TRUE(std::equal(forced.begin(), forced.end(), prompt.end() - forced.size()));
}

TEST(ServerHttp, ResponsesStreamFollowsOpenAIEventSequence) {
  TestServer ts;
  ts.script_text("<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final"
                 "<|message|>Hi there.<|return|>");
  auto r = ts.post("/v1/responses", ojson{{"model", "test-model"}, {"input", "hi"},
                                          {"stream", true}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  std::vector<std::string> types;
  std::string text;
  int seq = 0;
  for (const auto& e : sse_payloads(r->body)) {
    EXPECT_EQ(e["sequence_number"], seq++);
    std::string t = e["type"];
    if (types.empty() || types.back() != t) types.push_back(t);
    if (t == "response.output_text.delta") {
      text += e["delta"].get<std::string>();
      EXPECT_EQ(e["output_index"], 1);
    }
    if (t == "response.reasoning_text.delta") {
      EXPECT_EQ(e["output_index"], 0);
    }
    if (t == "response.completed") {
      EXPECT_EQ(e["response"]["output"].size(), 2u);
      EXPECT_EQ(e["response"]["status"], "completed");
      EXPECT_GT(e["response"]["usage"]["output_tokens"].get<int>(), 0);
    }
  }
  std::vector<std::string> want = {
      "response.created", "response.in_progress", "response.output_item.added",
      "response.content_part.added", "response.reasoning_text.delta",
      "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
      "response.output_text.done", "response.content_part.done", "response.output_item.done",
      "response.completed"};
  EXPECT_EQ(types, want);
  EXPECT_EQ(text, "Hi there.");
  EXPECT_EQ(r->body.find("[DONE]"), std::string::npos);
}

TEST(ServerHttp, ResponsesStoreAndPreviousResponseId) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>Paris.<|return|>");
  auto r1 = ts.post("/v1/responses", ojson{{"model", "test-model"}, {"input", "Capital of France?"},
                                           {"instructions", "Be brief."}});
  ASSERT_EQ(r1->status, 200) << r1->body;
  std::string id = ojson::parse(r1->body)["id"];
  auto first_prompt = ts.engine.last_prompt();
  auto r2 = ts.post("/v1/responses", ojson{{"model", "test-model"}, {"input", "And Spain?"},
                                           {"previous_response_id", id}});
  ASSERT_EQ(r2->status, 200) << r2->body;
  auto second = ts.engine.last_prompt();
  // The second prompt replays the first turn: first prompt (without its trailing
  // <|start|>assistant), then the answer as a final message, then the new user message.
  std::string text = ts.tokenizer->decode(second);
  EXPECT_NE(text.find("# Instructions\n\nBe brief."), std::string::npos) << text;
  EXPECT_NE(text.find("<|start|>user<|message|>Capital of France?<|end|>"
                      "<|start|>assistant<|channel|>final<|message|>Paris.<|end|>"
                      "<|start|>user<|message|>And Spain?<|end|><|start|>assistant"),
            std::string::npos) << text;
  auto got = ts.client->Get(("/v1/responses/" + id).c_str());
  ASSERT_EQ(got->status, 200);
  EXPECT_EQ(ojson::parse(got->body)["output"][0]["content"][0]["text"], "Paris.");
  (void)first_prompt;
}

// Chat Completions' response_format and the Responses API's text.format (the same fields one level
// up) render the same "# Response Formats" developer message.
TEST(ServerHttp, ResponseFormatGoesToTheDeveloperMessage) {
  TestServer ts;
  const ojson fields = {{"name", "answer"}, {"description", "The answer."},
                        {"schema", {{"type", "object"}, {"properties", {{"x", {{"type", "integer"}}}}}}}};
  ojson rf = {{"type", "json_schema"}, {"json_schema", fields}};
  ojson text_format = fields;
  text_format["type"] = "json_schema";
  const std::string want =
      "<|start|>developer<|message|># Response Formats\n\n## answer\n\n"
      "// The answer.\n{\"type\":\"object\",\"properties\":{\"x\":"
      "{\"type\":\"integer\"}}}<|end|>";
  ts.script_text("<|channel|>final<|message|>{}<|return|>");
  auto r = ts.post("/v1/chat/completions", chat("hi", {{"response_format", rf}}));
  ASSERT_EQ(r->status, 200) << r->body;
  std::string text = ts.tokenizer->decode(ts.engine.last_prompt());
  EXPECT_NE(text.find(want), std::string::npos) << text;
  ts.script_text("<|channel|>final<|message|>{}<|return|>");
  r = ts.post("/v1/responses", ojson{{"model", "test-model"}, {"input", "hi"}, {"text", {{"format", text_format}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  text = ts.tokenizer->decode(ts.engine.last_prompt());
  EXPECT_NE(text.find(want), std::string::npos) << text;
}

TEST(ServerHttp, CompletionsReturnRawText) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>raw<|return|>");
  auto r = ts.post("/v1/completions", ojson{{"model", "test-model"},
                                            {"prompt", "<|start|>user<|message|>x<|end|>"},
                                            {"max_tokens", 50}});
  ASSERT_EQ(r->status, 200) << r->body;
  ojson j = ojson::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], "<|channel|>final<|message|>raw");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
}

TEST(ServerHttp, MetricsCountRequestsAndTokens) {
  TestServer ts;
  ts.script_text("<|channel|>final<|message|>ok<|return|>");
  ASSERT_EQ(ts.post("/v1/chat/completions", chat("hi"))->status, 200);
  auto m = ts.client->Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("gptoss_http_requests_total{route=\"/v1/chat/completions\",code=\"200\"} 1"),
            std::string::npos) << m->body;
  EXPECT_NE(m->body.find("gptoss_generated_tokens_total 5"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("gptoss_time_to_first_token_seconds_count 1"), std::string::npos);
}

}  // namespace
}  // namespace gptoss::server::testing
