// Internals shared by the route files of the server (not a public header).
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <httplib.h>

#include "server/api_error.h"
#include "server/generation.h"
#include "server/harmony_codec.h"
#include "server/metrics.h"
#include "server/output_assembler.h"
#include "server/server.h"

namespace gptoss::server {

// A stored /v1/responses result (store=true), for previous_response_id.
struct StoredResponse {
  ojson items;  // input items then output items, in order
  std::string instructions;
  ojson response;  // the response object as returned
};

struct Server::Impl {
  ServerConfig config;
  engine::Engine* engine = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer;
  httplib::Server http;
  // The listening socket, seen by the socket-options hook before httplib binds it (bind() raises
  // its backlog); -1 until then.
  std::atomic<int> listen_socket{-1};
  Metrics metrics;
  std::atomic<int> active_requests{0};
  std::atomic<int> active_generations{0};
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();

  std::mutex store_mu;
  std::map<std::string, StoredResponse> store;
  std::deque<std::string> store_order;

  bool known_model(const std::string& name) const;
  void check_model(const std::string& name) const;  // throws 404 model_not_found
  PromptOptions prompt_options() const { return PromptOptions{config.current_date}; }
};

// Decrements a counter when it goes out of scope.
class CounterSlot {
 public:
  explicit CounterSlot(std::atomic<int>* c) : c_(c) {}
  ~CounterSlot() {
    if (c_) c_->fetch_sub(1);
  }
  CounterSlot(const CounterSlot&) = delete;
  CounterSlot& operator=(const CounterSlot&) = delete;

 private:
  std::atomic<int>* c_;
};

// One generation from admission to its end, seen from an HTTP thread. Converts engine token
// events into OutputEvents (harmony-parsed, or raw text for /v1/completions and Ollama raw).
class Job {
 public:
  enum class Mode { kHarmony, kRawText };
  // Admission (429 when too many are active), context check (400), submit. Throws ApiError.
  static std::unique_ptr<Job> start(Server::Impl& s, engine::GenerationRequest request, Mode mode,
                                    std::vector<std::string> stop_strings,
                                    const std::vector<uint32_t>& forced_prefix = {});
  ~Job();

  // Waits up to `timeout` for tokens; appends the resulting events. Returns false on timeout.
  bool step(std::vector<OutputEvent>* out, std::chrono::milliseconds timeout);
  // The client went away: cancel the engine request.
  void abandon();

  bool done() const { return done_; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }
  const std::vector<uint32_t>& output_tokens() const { return output_tokens_; }
  std::string finish_reason() const { return assembler_.finish_reason(); }
  const OutputAssembler& assembler() const { return assembler_; }
  double total_seconds() const;
  double prompt_seconds() const;  // submit to first token
  double decode_seconds() const;  // first to last token

 private:
  Job() = default;
  void handle(const engine::TokenEvent& ev, std::vector<OutputEvent>* out);

  Server::Impl* s_ = nullptr;
  Mode mode_ = Mode::kHarmony;
  std::unique_ptr<CounterSlot> slot_;
  std::unique_ptr<Generation> gen_;
  std::unique_ptr<OutputParser> parser_;
  std::unique_ptr<StreamDecoder> decoder_;
  std::vector<uint32_t> stop_tokens_;
  OutputAssembler assembler_;
  std::vector<uint32_t> output_tokens_;
  std::vector<OutputEvent> pending_;  // events from the forced prefix, sent first
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  bool done_ = false;
  bool abandoned_ = false;
  bool stop_requested_ = false;
  std::string error_;
  std::chrono::steady_clock::time_point start_, first_token_, last_token_;
};

// Response helpers.
void send_json(httplib::Response& res, int status, const ojson& body);
void send_error(httplib::Response& res, const ApiError& e, bool ollama_shape);
std::string sse_data(const ojson& j);                          // "data: {...}\n\n"
std::string sse_event(const std::string& type, const ojson& j);  // "event: t\ndata: {...}\n\n"
int64_t unix_now();
std::string iso_time_now();  // RFC 3339 with nanoseconds, as Ollama writes created_at

// Route registration, one per file.
void register_openai_chat(Server::Impl& s);
void register_openai_responses(Server::Impl& s);
void register_openai_completions(Server::Impl& s);
void register_ollama(Server::Impl& s);

// Wraps a route body: parses the JSON body, turns ApiError into an error response, counts the
// request in /metrics. `fn(body, res)` writes the response.
void handle_json_route(Server::Impl& s, const std::string& route, bool ollama_shape,
                       const httplib::Request& req, httplib::Response& res,
                       const std::function<void(const ojson&, httplib::Response&)>& fn);

}  // namespace gptoss::server

namespace gptoss::server {

// Streams a job's output with chunked transfer encoding. `on_events` turns new events into bytes;
// `on_done` writes the closing bytes once the job ended. A failed write or a closed socket
// cancels the engine request.
void stream_job(httplib::Response& res, const std::string& content_type, std::shared_ptr<Job> job,
                std::string prologue,
                std::function<std::string(const std::vector<OutputEvent>&)> on_events,
                std::function<std::string()> on_done);

// A non-streaming reply: waits for the job while watching the connection (a client that goes away
// cancels the sequence), then writes `build(events)` as the JSON body. The status is 200 (sent
// with the headers before generation ends); a failed generation writes an error object instead.
void reply_when_done(httplib::Response& res, std::shared_ptr<Job> job, bool ollama_shape,
                     std::function<ojson(const std::vector<OutputEvent>&)> build);

// Prompt tokens (with any forced tool-call header) for a harmony request; 400 if rendering fails.
RenderedPrompt render_or_throw(Server::Impl& s, const ChatRequest& req);
engine::GenerationRequest generation_request(const ChatRequest& req, const RenderedPrompt& p);

}  // namespace gptoss::server
