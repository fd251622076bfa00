// POST /v1/chat/completions.
#include <fmt/format.h>

#include "server/request_parse.h"
#include "server/server_impl.h"

namespace gptoss::server {

namespace {

ojson usage_json(const Job& job) {
  return ojson{{"prompt_tokens", job.prompt_tokens()},
               {"completion_tokens", job.completion_tokens()},
               {"total_tokens", job.prompt_tokens() + job.completion_tokens()}};
}

ojson chunk(const std::string& id, int64_t created, const std::string& model, ojson delta,
            const ojson& finish_reason = nullptr) {
  ojson choice = {{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                  {"finish_reason", finish_reason}};
  return ojson{{"id", id},
               {"object", "chat.completion.chunk"},
               {"created", created},
               {"model", model},
               {"system_fingerprint", "fp_gptoss"},
               {"choices", ojson::array({std::move(choice)})}};
}

ojson delta_for(const OutputEvent& e) {
  switch (e.kind) {
    case OutputEvent::Kind::kReasoningDelta:
      return ojson{{"reasoning_content", e.text}, {"reasoning", e.text}};
    case OutputEvent::Kind::kContentDelta:
      return ojson{{"content", e.text}};
    case OutputEvent::Kind::kToolCallStart:
      return ojson{{"tool_calls", ojson::array({ojson{
                                      {"index", e.tool_index},
                                      {"id", e.call_id},
                                      {"type", "function"},
                                      {"function", {{"name", e.name}, {"arguments", ""}}}}})}};
    case OutputEvent::Kind::kToolCallDelta:
      return ojson{{"tool_calls", ojson::array({ojson{{"index", e.tool_index},
                                                      {"function", {{"arguments", e.text}}}}})}};
    default:
      return nullptr;
  }
}

void chat_completions(Server::Impl& s, const ojson& body, httplib::Response& res) {
  ChatRequest cr = parse_chat_completions(body);
  s.check_model(cr.model);
  RenderedPrompt prompt = render_or_throw(s, cr);
  std::shared_ptr<Job> job = Job::start(s, generation_request(cr, prompt), Job::Mode::kHarmony,
                                        cr.stop, prompt.forced);
  const std::string id = "chatcmpl-" + random_hex(24);
  const int64_t created = unix_now();
  const std::string model = cr.model;

  if (!cr.stream) {
    Job* jp = job.get();
    reply_when_done(res, job, false, [jp, id, created, model](const std::vector<OutputEvent>&) {
      const OutputAssembler& a = jp->assembler();
      ojson msg = {{"role", "assistant"}};
      msg["content"] = a.content().empty() && !a.tool_calls().empty() ? ojson(nullptr)
                                                                      : ojson(a.content());
      if (!a.reasoning().empty()) {
        msg["reasoning_content"] = a.reasoning();
        msg["reasoning"] = a.reasoning();
      }
      if (!a.tool_calls().empty()) {
        ojson calls = ojson::array();
        for (const auto& c : a.tool_calls()) {
          calls.push_back({{"id", c.id},
                           {"type", "function"},
                           {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        }
        msg["tool_calls"] = calls;
      }
      ojson choice = {{"index", 0}, {"message", msg}, {"logprobs", nullptr},
                      {"finish_reason", jp->finish_reason()}};
      return ojson{{"id", id},
                   {"object", "chat.completion"},
                   {"created", created},
                   {"model", model},
                   {"system_fingerprint", "fp_gptoss"},
                   {"choices", ojson::array({choice})},
                   {"usage", usage_json(*jp)}};
    });
    return;
  }

  const bool include_usage = cr.include_usage;
  std::string prologue = sse_data(chunk(id, created, model,
                                        ojson{{"role", "assistant"}, {"content", ""}}));
  Job* jp = job.get();
  stream_job(
      res, "text/event-stream", job, prologue,
      [id, created, model](const std::vector<OutputEvent>& events) {
        std::string out;
        for (const auto& e : events) {
          ojson d = delta_for(e);
          if (!d.is_null()) out += sse_data(chunk(id, created, model, std::move(d)));
        }
        return out;
      },
      [jp, id, created, model, include_usage]() {
        std::string out;
        if (jp->failed()) {
          out += sse_data(ApiError::internal("generation failed: " + jp->error()).to_openai_json());
        } else {
          out += sse_data(chunk(id, created, model, ojson::object(), jp->finish_reason()));
        }
        if (include_usage) {
          out += sse_data(ojson{{"id", id},
                                {"object", "chat.completion.chunk"},
                                {"created", created},
                                {"model", model},
                                {"system_fingerprint", "fp_gptoss"},
                                {"choices", ojson::array()},
                                {"usage", usage_json(*jp)}});
        }
        out += "data: [DONE]\n\n";
        return out;
      });
}

}  // namespace

void register_openai_chat(Server::Impl& s) {
  s.http.Post("/v1/chat/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/v1/chat/completions", false, req, res,
                      [&s](const ojson& body, httplib::Response& r) { chat_completions(s, body, r); });
  });
}

}  // namespace gptoss::server
