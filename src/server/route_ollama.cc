// Ollama's native API: POST /api/chat and /api/generate (NDJSON streaming by default).
#include <fmt/format.h>

#include "server/request_parse.h"
#include "server/server_impl.h"

namespace gptoss::server {

namespace {

int64_t ns(double s) { return static_cast<int64_t>(s * 1e9); }

void add_stats(const Job& job, ojson* j) {
  (*j)["done_reason"] = job.finish_reason() == "length" ? "length" : "stop";
  (*j)["total_duration"] = ns(job.total_seconds());
  (*j)["load_duration"] = 0;
  (*j)["prompt_eval_count"] = job.prompt_tokens();
  (*j)["prompt_eval_duration"] = ns(job.prompt_seconds());
  (*j)["eval_count"] = job.completion_tokens();
  (*j)["eval_duration"] = ns(job.decode_seconds());
}

// Tool calls with their arguments as JSON objects (Ollama's shape). Arguments that are not a
// JSON object are an error, as in Ollama.
ojson ollama_tool_calls(const std::vector<ToolCall>& calls) {
  ojson out = ojson::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    ojson args = ojson::parse(calls[i].arguments, nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
      ApiError e = ApiError::internal(fmt::format("error parsing tool call: raw='{}', err=not a "
                                                  "JSON object", calls[i].arguments));
      throw e;
    }
    out.push_back({{"id", calls[i].id},
                   {"function", {{"index", i}, {"name", calls[i].name}, {"arguments", args}}}});
  }
  return out;
}

std::string line(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
}

void chat(Server::Impl& s, const ojson& body, httplib::Response& res, bool generate) {
  OllamaExtras extras;
  ChatRequest cr = generate ? parse_ollama_generate(body, &extras) : parse_ollama_chat(body);
  if (!s.known_model(cr.model)) {
    throw ApiError::not_found(fmt::format("model '{}' not found", cr.model));
  }
  std::shared_ptr<Job> job;
  std::vector<uint32_t> prompt_ids;
  if (extras.raw) {
    engine::GenerationRequest g;
    g.prompt = s.tokenizer->encode_with_special(extras.raw_prompt);
    g.sampling = cr.sampling;
    g.max_tokens = cr.max_tokens;
    g.stop_tokens = {200002, 200012, 199999};
    prompt_ids = g.prompt;
    job = Job::start(s, std::move(g), Job::Mode::kRawText, cr.stop);
  } else {
    RenderedPrompt prompt = render_or_throw(s, cr);
    engine::GenerationRequest g = generation_request(cr, prompt);
    prompt_ids = g.prompt;
    job = Job::start(s, std::move(g), Job::Mode::kHarmony, cr.stop, prompt.forced);
  }
  const std::string model = cr.model;
  // One NDJSON object for a piece of output.
  auto piece = [model, generate](const std::string& content, const std::string& thinking) {
    ojson j = {{"model", model}, {"created_at", iso_time_now()}};
    if (generate) {
      j["response"] = content;
      if (!thinking.empty()) j["thinking"] = thinking;
    } else {
      ojson m = {{"role", "assistant"}, {"content", content}};
      if (!thinking.empty()) m["thinking"] = thinking;
      j["message"] = m;
    }
    j["done"] = false;
    return j;
  };
  auto final_object = [model, generate, prompt_ids](const Job& j, bool with_output) {
    const OutputAssembler& a = j.assembler();
    ojson out = {{"model", model}, {"created_at", iso_time_now()}};
    if (generate) {
      out["response"] = with_output ? a.content() : "";
      if (with_output && !a.reasoning().empty()) out["thinking"] = a.reasoning();
    } else {
      ojson m = {{"role", "assistant"}, {"content", with_output ? a.content() : ""}};
      if (with_output && !a.reasoning().empty()) m["thinking"] = a.reasoning();
      if (with_output && !a.tool_calls().empty()) m["tool_calls"] = ollama_tool_calls(a.tool_calls());
      out["message"] = m;
    }
    out["done"] = true;
    add_stats(j, &out);
    if (generate) {
      ojson ctx = ojson::array();
      for (uint32_t t : prompt_ids) ctx.push_back(t);
      for (uint32_t t : j.output_tokens()) ctx.push_back(t);
      out["context"] = ctx;
    }
    return out;
  };

  if (!cr.stream) {
    Job* jp = job.get();
    reply_when_done(res, job, true, [jp, final_object](const std::vector<OutputEvent>&) {
      return final_object(*jp, true);
    });
    return;
  }
  Job* jp = job.get();
  stream_job(
      res, "application/x-ndjson", job, "",
      [piece](const std::vector<OutputEvent>& events) {
        std::string out;
        for (const auto& e : events) {
          if (e.kind == OutputEvent::Kind::kContentDelta) out += line(piece(e.text, ""));
          if (e.kind == OutputEvent::Kind::kReasoningDelta) out += line(piece("", e.text));
        }
        return out;
      },
      [jp, final_object, generate, model]() {
        if (jp->failed()) return line(ojson{{"error", "generation failed: " + jp->error()}});
        std::string out;
        if (!generate && !jp->assembler().tool_calls().empty()) {
          try {
            ojson j = {{"model", model}, {"created_at", iso_time_now()},
                       {"message", {{"role", "assistant"}, {"content", ""},
                                    {"tool_calls", ollama_tool_calls(jp->assembler().tool_calls())}}},
                       {"done", false}};
            out += line(j);
          } catch (const ApiError& e) {
            return line(e.to_ollama_json());
          }
        }
        return out + line(final_object(*jp, false));
      });
}

}  // namespace

void register_ollama(Server::Impl& s) {
  s.http.Post("/api/chat", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/api/chat", true, req, res, [&s](const ojson& body, httplib::Response& r) {
      chat(s, body, r, /*generate=*/false);
    });
  });
  s.http.Post("/api/generate", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/api/generate", true, req, res,
                      [&s](const ojson& body, httplib::Response& r) {
                        chat(s, body, r, /*generate=*/true);
                      });
  });
}

}  // namespace gptoss::server
