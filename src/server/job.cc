// Job: one generation from admission to its end, on an HTTP thread.
#include <fmt/format.h>

#include "server/server_impl.h"

namespace gptoss::server {

std::unique_ptr<Job> Job::start(Server::Impl& s, engine::GenerationRequest request, Mode mode,
                                std::vector<std::string> stop_strings,
                                const std::vector<uint32_t>& forced_prefix) {
  const int limit = s.config.max_active_requests;
  if (s.active_generations.fetch_add(1) >= limit) {
    s.active_generations.fetch_sub(1);
    s.metrics.count_rejected();
    throw ApiError::overloaded(fmt::format("the server is busy ({} requests in flight); retry "
                                           "after {} s", limit, s.config.retry_after_s),
                               s.config.retry_after_s);
  }
  std::unique_ptr<Job> job(new Job());
  job->slot_ = std::make_unique<CounterSlot>(&s.active_generations);
  job->s_ = &s;
  job->mode_ = mode;
  job->assembler_ = OutputAssembler(std::move(stop_strings));
  job->stop_tokens_ = request.stop_tokens;
  const int ctx = s.engine->context_length();
  const int prompt = static_cast<int>(request.prompt.size());
  if (prompt == 0) throw ApiError::invalid("", "the prompt is empty");
  if (request.max_tokens < 0) {
    request.max_tokens = ctx - prompt;
    if (request.max_tokens <= 0) {
      throw ApiError::invalid("messages", fmt::format("This model's maximum context length is {} "
                                                      "tokens. However, your prompt is {} tokens, "
                                                      "which leaves no room for a completion.",
                                                      ctx, prompt),
                              "context_length_exceeded");
    }
  } else if (static_cast<int64_t>(prompt) + request.max_tokens > ctx) {
    throw ApiError::invalid(
        "max_tokens",
        fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                    "tokens ({} in the prompt, {} in the completion). Please reduce the length of "
                    "the messages or the completion.",
                    ctx, static_cast<int64_t>(prompt) + request.max_tokens, prompt,
                    request.max_tokens),
        "context_length_exceeded");
  }
  job->prompt_tokens_ = prompt;
  job->start_ = std::chrono::steady_clock::now();
  auto gen = Generation::start(*s.engine, std::move(request));
  if (!gen) {
    const std::string& msg = gen.status().message();
    if (msg.find("queue") != std::string::npos) {
      s.metrics.count_rejected();
      throw ApiError::overloaded(msg, s.config.retry_after_s);
    }
    if (msg.find("context") != std::string::npos) {
      throw ApiError::invalid("max_tokens", msg, "context_length_exceeded");
    }
    ApiError e = ApiError::internal(msg);
    e.status = 503;
    e.retry_after_s = s.config.retry_after_s;
    throw e;
  }
  job->gen_ = std::move(*gen);
  if (mode == Mode::kHarmony) {
    job->parser_ = new_output_parser(s.tokenizer);
    std::vector<ParsedEvent> parsed;
    for (uint32_t t : forced_prefix) job->parser_->push(t, &parsed);
    // The forced header is part of the output (a tool call starts): keep its events.
    for (const auto& p : parsed) job->assembler_.on_parsed(p, &job->pending_);
  } else {
    job->decoder_ = std::make_unique<StreamDecoder>(*s.tokenizer);
  }
  return job;
}

Job::~Job() = default;

double Job::total_seconds() const {
  auto end = done_ ? last_token_ : std::chrono::steady_clock::now();
  if (completion_tokens_ == 0) end = std::chrono::steady_clock::now();
  return std::chrono::duration<double>(end - start_).count();
}

double Job::prompt_seconds() const {
  if (completion_tokens_ == 0) return 0;
  return std::chrono::duration<double>(first_token_ - start_).count();
}

double Job::decode_seconds() const {
  if (completion_tokens_ == 0) return 0;
  return std::chrono::duration<double>(last_token_ - first_token_).count();
}

void Job::abandon() {
  if (done_ || abandoned_) return;
  abandoned_ = true;
  s_->metrics.count_disconnect();
  gen_->cancel();
}

bool Job::step(std::vector<OutputEvent>* out, std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    for (auto& e : pending_) out->push_back(std::move(e));
    pending_.clear();
  }
  if (done_) return true;
  std::vector<engine::TokenEvent> events;
  if (!gen_->wait(&events, timeout)) return false;
  for (const auto& ev : events) handle(ev, out);
  return true;
}

void Job::handle(const engine::TokenEvent& ev, std::vector<OutputEvent>* out) {
  if (done_) return;
  if (ev.has_token) {
    auto now = std::chrono::steady_clock::now();
    if (completion_tokens_ == 0) first_token_ = now;
    last_token_ = now;
    completion_tokens_++;
    output_tokens_.push_back(ev.token);
    if (mode_ == Mode::kHarmony) {
      std::vector<ParsedEvent> parsed;
      parser_->push(ev.token, &parsed);
      for (const auto& p : parsed) assembler_.on_parsed(p, out);
    } else {
      bool is_stop = false;
      for (uint32_t t : stop_tokens_) is_stop = is_stop || t == ev.token;
      if (!is_stop) assembler_.on_unparsed_text(decoder_->push(ev.token), out);
    }
    if (assembler_.stop_string_hit() && !stop_requested_) {
      stop_requested_ = true;
      gen_->cancel();
    }
  }
  if (!ev.finished) return;
  engine::FinishReason reason = ev.reason;
  if (reason == engine::FinishReason::kError) error_ = ev.error.empty() ? "engine error" : ev.error;
  if (mode_ == Mode::kHarmony) {
    std::vector<ParsedEvent> parsed;
    parser_->finish(&parsed);
    for (const auto& p : parsed) assembler_.on_parsed(p, out);
  } else {
    assembler_.on_unparsed_text(decoder_->flush(), out);
  }
  if (reason == engine::FinishReason::kCancelled && stop_requested_) reason = engine::FinishReason::kStop;
  assembler_.finish(reason, out);
  done_ = true;
  if (completion_tokens_ == 0) last_token_ = first_token_ = std::chrono::steady_clock::now();
  double ttft = completion_tokens_ > 0
                    ? std::chrono::duration<double>(first_token_ - start_).count()
                    : -1.0;
  double decode = std::chrono::duration<double>(last_token_ - first_token_).count();
  s_->metrics.record_generation(prompt_tokens_, completion_tokens_, ttft, decode);
}

}  // namespace gptoss::server
