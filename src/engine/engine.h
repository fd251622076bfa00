// The engine: generation requests in, token events out. One engine thread runs a
// continuous-batching scheduler over every live sequence (prefill and decode mixed, fair between
// requests); callers on other threads submit, receive events through a callback, and cancel.
// Chat-format work (harmony rendering and parsing, JSON) stays with the callers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace gptoss::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;
  int top_k = 0;             // 0 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;  // llama.cpp style, over the prompt and generated tokens
  float presence_penalty = 0.0f;    // OpenAI style, over generated tokens
  float frequency_penalty = 0.0f;
  bool has_seed = false;
  uint64_t seed = 0;
};

struct GenerationRequest {
  std::vector<uint32_t> prompt;
  SamplingParams sampling;
  int max_tokens = -1;               // -1: until the context is full
  std::vector<uint32_t> stop_tokens; // e.g. <|return|>, <|call|>; the stop token is reported
};

enum class FinishReason { kNone, kStop, kLength, kContextFull, kCancelled, kError };
const char* finish_reason_name(FinishReason r);

// One event per generated token; the last event of a request has finished = true.
struct TokenEvent {
  uint32_t token = 0;
  bool has_token = false;       // false on an event that only finishes (cancel, error)
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;            // set with kError
};

struct EngineStats {
  uint64_t requests_total = 0;
  uint64_t prompt_tokens_total = 0;
  uint64_t generated_tokens_total = 0;
  int running = 0;
  int queued = 0;
};

using RequestId = uint64_t;
// Called on the engine thread: keep it short (copy into a queue, signal a condition variable).
using TokenSink = std::function<void(const TokenEvent&)>;

class Engine {
 public:
  virtual ~Engine() = default;
  // Fails at once (never queues) when the prompt plus max_tokens cannot fit the context, or the
  // queue is full.
  virtual Expected<RequestId> submit(GenerationRequest request, TokenSink sink) = 0;
  // Submits requests[i] with sinks[i] as one unit: all are accepted or none (the first failure is
  // returned), and the scheduler sees them arrive together, so those that fit the running slots
  // start in the same step (benchmarks of N concurrent sequences). This default submits one by one.
  virtual Expected<std::vector<RequestId>> submit_all(std::vector<GenerationRequest> requests,
                                                      std::vector<TokenSink> sinks) {
    std::vector<RequestId> ids;
    for (size_t i = 0; i < requests.size() && i < sinks.size(); ++i) {
      auto id = submit(std::move(requests[i]), std::move(sinks[i]));
      if (!id) {
        for (RequestId done : ids) cancel(done);
        return id.status();
      }
      ids.push_back(*id);
    }
    return ids;
  }
  // Stops the request and frees its KV memory; its sink gets a final kCancelled event.
  virtual void cancel(RequestId id) = 0;
  virtual EngineStats stats() const = 0;
  virtual int context_length() const = 0;
};

}  // namespace gptoss::engine
