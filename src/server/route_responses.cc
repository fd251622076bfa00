// POST /v1/responses (OpenAI Responses API), with OpenAI's streaming event sequence and an
// in-memory store for previous_response_id. GET /v1/responses/{id} returns a stored response.
#include <fmt/format.h>

#include "server/json_fields.h"
#include "server/request_parse.h"
#include "server/server_impl.h"

namespace gptoss::server {

namespace {

// Builds the response object and its SSE events from OutputEvents.
class ResponseBuilder {
 public:
  ResponseBuilder(ojson base) : resp_(std::move(base)) {}

  // Events for a new response (created, in_progress).
  std::string start() {
    std::string out = event("response.created", {{"response", snapshot("in_progress")}});
    out += event("response.in_progress", {{"response", snapshot("in_progress")}});
    return out;
  }

  std::string on(const OutputEvent& e) {
    std::string out;
    switch (e.kind) {
      case OutputEvent::Kind::kReasoningDelta:
        if (kind_ != Open::kReasoning) {
          out += close();
          open_item(Open::kReasoning, "rs_", ojson{{"type", "reasoning"}, {"summary", ojson::array()},
                                                   {"content", ojson::array()}}, &out);
          out += event("response.content_part.added",
                       part_fields(ojson{{"type", "reasoning_text"}, {"text", ""}}));
        }
        text_ += e.text;
        out += event("response.reasoning_text.delta", delta_fields(e.text));
        break;
      case OutputEvent::Kind::kContentDelta:
        if (kind_ != Open::kMessage) {
          out += close();
          open_item(Open::kMessage, "msg_",
                    ojson{{"type", "message"}, {"status", "in_progress"}, {"role", "assistant"},
                          {"content", ojson::array()}}, &out);
          out += event("response.content_part.added",
                       part_fields(ojson{{"type", "output_text"}, {"text", ""},
                                         {"annotations", ojson::array()}}));
        }
        text_ += e.text;
        {
          ojson d = delta_fields(e.text);
          d["logprobs"] = ojson::array();
          out += event("response.output_text.delta", d);
        }
        break;
      case OutputEvent::Kind::kToolCallStart:
        out += close();
        call_id_ = e.call_id;
        call_name_ = e.name;
        open_item(Open::kCall, "fc_",
                  ojson{{"type", "function_call"}, {"status", "in_progress"}, {"call_id", e.call_id},
                        {"name", e.name}, {"arguments", ""}}, &out);
        break;
      case OutputEvent::Kind::kToolCallDelta:
        if (kind_ == Open::kCall) {
          text_ += e.text;
          out += event("response.function_call_arguments.delta",
                       {{"item_id", item_id_}, {"output_index", index_}, {"delta", e.text}});
        }
        break;
      case OutputEvent::Kind::kReasoningDone:
      case OutputEvent::Kind::kContentDone:
      case OutputEvent::Kind::kToolCallDone:
        out += close();
        break;
    }
    return out;
  }

  std::string close() {
    std::string out;
    ojson item;
    switch (kind_) {
      case Open::kNone:
        return out;
      case Open::kReasoning: {
        ojson part = {{"type", "reasoning_text"}, {"text", text_}};
        out += event("response.reasoning_text.done", text_fields(text_));
        out += event("response.content_part.done", part_fields(part));
        item = {{"id", item_id_}, {"type", "reasoning"}, {"summary", ojson::array()},
                {"content", ojson::array({part})}};
        break;
      }
      case Open::kMessage: {
        ojson part = {{"type", "output_text"}, {"text", text_}, {"annotations", ojson::array()},
                      {"logprobs", ojson::array()}};
        out += event("response.output_text.done", [&] {
          ojson f = text_fields(text_);
          f["logprobs"] = ojson::array();
          return f;
        }());
        out += event("response.content_part.done", part_fields(part));
        item = {{"id", item_id_}, {"type", "message"}, {"status", "completed"},
                {"role", "assistant"}, {"content", ojson::array({part})}};
        break;
      }
      case Open::kCall:
        out += event("response.function_call_arguments.done",
                     {{"item_id", item_id_}, {"output_index", index_}, {"arguments", text_}});
        item = {{"id", item_id_}, {"type", "function_call"}, {"status", "completed"},
                {"call_id", call_id_}, {"name", call_name_}, {"arguments", text_}};
        break;
    }
    output_.push_back(item);
    out += event("response.output_item.done", {{"output_index", index_}, {"item", item}});
    kind_ = Open::kNone;
    text_.clear();
    return out;
  }

  // The last event: completed, incomplete (max_output_tokens) or failed.
  std::string finish(const Job& job) {
    std::string out = close();
    usage_ = ojson{{"input_tokens", job.prompt_tokens()},
                   {"input_tokens_details", {{"cached_tokens", 0}}},
                   {"output_tokens", job.completion_tokens()},
                   {"output_tokens_details", {{"reasoning_tokens", 0}}},
                   {"total_tokens", job.prompt_tokens() + job.completion_tokens()}};
    if (job.failed()) {
      status_ = "failed";
      error_ = ojson{{"code", "server_error"}, {"message", "generation failed: " + job.error()}};
      out += event("response.failed", {{"response", snapshot(status_)}});
    } else if (job.finish_reason() == "length") {
      status_ = "incomplete";
      out += event("response.incomplete", {{"response", snapshot(status_)}});
    } else {
      status_ = "completed";
      out += event("response.completed", {{"response", snapshot(status_)}});
    }
    return out;
  }

  ojson final_response() const { return snapshot(status_); }
  const ojson& output() const { return output_; }
  const std::string& status() const { return status_; }

 private:
  enum class Open { kNone, kReasoning, kMessage, kCall };

  void open_item(Open kind, const char* prefix, ojson item, std::string* out) {
    kind_ = kind;
    index_ = static_cast<int>(output_.size());
    item_id_ = prefix + random_hex(24);
    text_.clear();
    ojson full = {{"id", item_id_}};
    full.update(item);
    *out += event("response.output_item.added", {{"output_index", index_}, {"item", full}});
  }
  ojson part_fields(ojson part) const {
    return {{"item_id", item_id_}, {"output_index", index_}, {"content_index", 0},
            {"part", std::move(part)}};
  }
  ojson delta_fields(const std::string& d) const {
    return {{"item_id", item_id_}, {"output_index", index_}, {"content_index", 0}, {"delta", d}};
  }
  ojson text_fields(const std::string& t) const {
    return {{"item_id", item_id_}, {"output_index", index_}, {"content_index", 0}, {"text", t}};
  }
  std::string event(const std::string& type, ojson fields) {
    ojson j = {{"type", type}, {"sequence_number", seq_++}};
    j.update(fields);
    return sse_event(type, j);
  }
  ojson snapshot(const std::string& status) const {
    ojson r = resp_;
    r["status"] = status;
    r["output"] = output_;
    r["usage"] = usage_;
    r["error"] = error_;
    if (status == "incomplete") {
      r["incomplete_details"] = {{"reason", "max_output_tokens"}};
    }
    return r;
  }

  ojson resp_;
  ojson output_ = ojson::array();
  ojson usage_ = nullptr;
  ojson error_ = nullptr;
  std::string status_ = "in_progress";
  Open kind_ = Open::kNone;
  int index_ = -1;
  std::string item_id_, call_id_, call_name_, text_;
  int seq_ = 0;
};

void store_response(Server::Impl& s, const std::string& id, StoredResponse stored) {
  std::lock_guard<std::mutex> lock(s.store_mu);
  s.store[id] = std::move(stored);
  s.store_order.push_back(id);
  while (s.store_order.size() > s.config.max_stored_responses) {
    s.store.erase(s.store_order.front());
    s.store_order.pop_front();
  }
}

void responses(Server::Impl& s, const ojson& body, httplib::Response& res) {
  ojson history = ojson::array();
  std::string inherited;
  if (auto prev = opt_string(body, "previous_response_id", "")) {
    std::lock_guard<std::mutex> lock(s.store_mu);
    auto it = s.store.find(*prev);
    if (it == s.store.end()) {
      throw ApiError::not_found(fmt::format("Previous response with id '{}' not found.", *prev),
                                "previous_response_id", "previous_response_not_found");
    }
    history = it->second.items;
    inherited = it->second.instructions;
  }
  ResponsesExtras extras;
  ChatRequest cr = parse_responses(body, history, inherited, &extras);
  s.check_model(cr.model);
  RenderedPrompt prompt = render_or_throw(s, cr);
  std::shared_ptr<Job> job = Job::start(s, generation_request(cr, prompt), Job::Mode::kHarmony,
                                        {}, prompt.forced);
  const std::string id = "resp_" + random_hex(32);
  ojson base = {{"id", id},
                {"object", "response"},
                {"created_at", unix_now()},
                {"status", "in_progress"},
                {"background", false},
                {"error", nullptr},
                {"incomplete_details", nullptr},
                {"instructions", extras.instructions.empty() ? ojson(nullptr)
                                                             : ojson(extras.instructions)},
                {"max_output_tokens", extras.max_output_tokens > 0
                                          ? ojson(extras.max_output_tokens) : ojson(nullptr)},
                {"model", cr.model},
                {"output", ojson::array()},
                {"parallel_tool_calls", false},
                {"previous_response_id", extras.previous_response_id.empty()
                                             ? ojson(nullptr) : ojson(extras.previous_response_id)},
                {"reasoning", {{"effort", cr.reasoning_effort}, {"summary", nullptr}}},
                {"store", extras.store},
                {"temperature", cr.sampling.temperature},
                {"text", {{"format", {{"type", "text"}}}}},
                {"tool_choice", cr.tool_choice == "auto" || cr.tool_choice == "none" ||
                                        cr.tool_choice == "required"
                                    ? ojson(cr.tool_choice)
                                    : ojson{{"type", "function"}, {"name", cr.tool_choice}}},
                {"tools", extras.tools_echo},
                {"top_p", cr.sampling.top_p},
                {"truncation", "disabled"},
                {"usage", nullptr},
                {"metadata", ojson::object()}};
  auto builder = std::make_shared<ResponseBuilder>(std::move(base));
  // Saves the finished response for previous_response_id.
  auto save = [&s, id, history, extras, builder]() {
    if (!extras.store || builder->status() == "failed") return;
    StoredResponse stored;
    stored.items = history;
    for (const auto& it : extras.input_items) stored.items.push_back(it);
    for (const auto& it : builder->output()) stored.items.push_back(it);
    stored.instructions = extras.instructions;
    stored.response = builder->final_response();
    store_response(s, id, std::move(stored));
  };

  if (!cr.stream) {
    Job* jp = job.get();
    reply_when_done(res, job, false, [jp, builder, save](const std::vector<OutputEvent>& events) {
      for (const auto& e : events) builder->on(e);
      builder->finish(*jp);
      save();
      return builder->final_response();
    });
    return;
  }
  Job* jp = job.get();
  stream_job(
      res, "text/event-stream", job, builder->start(),
      [builder](const std::vector<OutputEvent>& events) {
        std::string out;
        for (const auto& e : events) out += builder->on(e);
        return out;
      },
      [builder, jp, save]() {
        std::string out = builder->finish(*jp);
        save();
        return out;
      });
}

}  // namespace

void register_openai_responses(Server::Impl& s) {
  s.http.Post("/v1/responses", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/v1/responses", false, req, res,
                      [&s](const ojson& body, httplib::Response& r) { responses(s, body, r); });
  });
  s.http.Get(R"(/v1/responses/([A-Za-z0-9_]+))",
             [&s](const httplib::Request& req, httplib::Response& res) {
               std::string id = req.matches[1];
               std::lock_guard<std::mutex> lock(s.store_mu);
               auto it = s.store.find(id);
               if (it == s.store.end()) {
                 send_error(res, ApiError::not_found(fmt::format("Response with id '{}' not found.",
                                                                 id)), false);
               } else {
                 send_json(res, 200, it->second.response);
               }
               s.metrics.count_request("/v1/responses/{id}", res.status);
             });
}

}  // namespace gptoss::server
