// Harmony messages as the model writes them -> what the APIs return: analysis -> reasoning,
// final (and a commentary preamble) -> content, a message to functions.NAME -> a tool call with an
// id and its JSON arguments. Works incrementally so the same events drive streaming and
// non-streaming replies. Stop strings are applied to the content: the text before the first
// match is kept and the caller is told to stop the engine.
#pragma once

#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/chat_request.h"

namespace gptoss::server {

// What a harmony streaming parser reports, in API-neutral terms.
struct ParsedEvent {
  enum class Kind { kMessageStart, kContentDelta, kMessageEnd };
  Kind kind = Kind::kContentDelta;
  std::string channel;
  std::string recipient;
  std::string content_type;
  std::string text;  // kContentDelta
};

struct OutputEvent {
  enum class Kind {
    kReasoningDelta,  // text
    kReasoningDone,   // text = the whole reasoning message
    kContentDelta,    // text
    kContentDone,     // text = the whole content message (its end)
    kToolCallStart,   // tool_index, call_id, name
    kToolCallDelta,   // tool_index, text = a piece of the arguments
    kToolCallDone,    // tool_index, call_id, name, text = the whole arguments
  };
  Kind kind = Kind::kContentDelta;
  std::string text;
  int tool_index = -1;
  std::string call_id;
  std::string name;
};

class OutputAssembler {
 public:
  explicit OutputAssembler(std::vector<std::string> stop_strings = {});

  void on_parsed(const ParsedEvent& ev, std::vector<OutputEvent>* out);
  // Text the parser could not place in a message (a generation that never finished a header):
  // returned as content, as other servers do, instead of being lost.
  void on_unparsed_text(const std::string& text, std::vector<OutputEvent>* out);
  // The generation ended: flushes held-back content and closes any open message.
  void finish(engine::FinishReason reason, std::vector<OutputEvent>* out);

  bool stop_string_hit() const { return stopped_; }
  // "stop" | "length" | "tool_calls" (valid after finish()).
  std::string finish_reason() const;

  const std::string& reasoning() const { return reasoning_; }
  const std::string& content() const { return content_; }
  const std::vector<ToolCall>& tool_calls() const { return calls_; }

 private:
  enum class Route { kNone, kReasoning, kContent, kToolCall, kDropped };
  void emit_content(const std::string& text, std::vector<OutputEvent>* out);
  void flush_content(std::vector<OutputEvent>* out);
  void close_message(std::vector<OutputEvent>* out);

  std::vector<std::string> stops_;
  Route route_ = Route::kNone;
  std::string message_text_;  // current message so far (reasoning or arguments)
  std::string reasoning_;
  std::string content_;
  std::string held_;  // content held back while it may be the start of a stop string
  std::vector<ToolCall> calls_;
  bool stopped_ = false;
  bool finished_ = false;
  engine::FinishReason reason_ = engine::FinishReason::kNone;
};

// "call_" + 24 random hex digits.
std::string new_call_id();
std::string random_hex(size_t n);

}  // namespace gptoss::server
