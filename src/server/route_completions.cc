// POST /v1/completions: a raw prompt (special tokens such as <|start|> allowed), raw text out.
#include "server/request_parse.h"
#include "server/server_impl.h"

namespace gptoss::server {

namespace {

// <|return|>, <|call|>, <|endoftext|>.
const std::vector<uint32_t> kRawStopTokens = {200002, 200012, 199999};

ojson completion_chunk(const std::string& id, int64_t created, const std::string& model,
                       const std::string& text, const ojson& finish_reason) {
  ojson choice = {{"text", text}, {"index", 0}, {"logprobs", nullptr},
                  {"finish_reason", finish_reason}};
  return ojson{{"id", id}, {"object", "text_completion"}, {"created", created},
               {"model", model}, {"choices", ojson::array({choice})}};
}

void completions(Server::Impl& s, const ojson& body, httplib::Response& res) {
  CompletionRequest cr = parse_completions(body);
  s.check_model(cr.model);
  engine::GenerationRequest g;
  g.prompt = s.tokenizer->encode_with_special(cr.prompt);
  if (g.prompt.empty()) throw ApiError::invalid("prompt", "'prompt' is empty");
  g.sampling = cr.sampling;
  g.max_tokens = cr.max_tokens;
  g.stop_tokens = kRawStopTokens;
  std::shared_ptr<Job> job = Job::start(s, std::move(g), Job::Mode::kRawText, cr.stop);
  const std::string id = "cmpl-" + random_hex(24);
  const int64_t created = unix_now();
  const std::string model = cr.model;
  const std::string echo = cr.echo ? cr.prompt : "";
  auto usage = [](const Job& j) {
    return ojson{{"prompt_tokens", j.prompt_tokens()},
                 {"completion_tokens", j.completion_tokens()},
                 {"total_tokens", j.prompt_tokens() + j.completion_tokens()}};
  };
  if (!cr.stream) {
    Job* jp = job.get();
    reply_when_done(res, job, false,
                    [jp, id, created, model, echo, usage](const std::vector<OutputEvent>&) {
                      ojson out = completion_chunk(id, created, model,
                                                   echo + jp->assembler().content(),
                                                   jp->finish_reason());
                      out["usage"] = usage(*jp);
                      return out;
                    });
    return;
  }
  const bool include_usage = cr.include_usage;
  Job* jp = job.get();
  std::string prologue = echo.empty() ? "" : sse_data(completion_chunk(id, created, model, echo,
                                                                       nullptr));
  stream_job(
      res, "text/event-stream", job, prologue,
      [id, created, model](const std::vector<OutputEvent>& events) {
        std::string out;
        for (const auto& e : events) {
          if (e.kind == OutputEvent::Kind::kContentDelta && !e.text.empty()) {
            out += sse_data(completion_chunk(id, created, model, e.text, nullptr));
          }
        }
        return out;
      },
      [jp, id, created, model, include_usage, usage]() {
        std::string out;
        if (jp->failed()) {
          out += sse_data(ApiError::internal("generation failed: " + jp->error()).to_openai_json());
        } else {
          out += sse_data(completion_chunk(id, created, model, "", jp->finish_reason()));
        }
        if (include_usage) {
          out += sse_data(ojson{{"id", id}, {"object", "text_completion"}, {"created", created},
                                {"model", model}, {"choices", ojson::array()},
                                {"usage", usage(*jp)}});
        }
        return out + "data: [DONE]\n\n";
      });
}

}  // namespace

void register_openai_completions(Server::Impl& s) {
  s.http.Post("/v1/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/v1/completions", false, req, res,
                      [&s](const ojson& body, httplib::Response& r) { completions(s, body, r); });
  });
}

}  // namespace gptoss::server
