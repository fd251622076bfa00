#include "server/output_assembler.h"

#include <random>

namespace gptoss::server {

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& c : s) c = kHex[rng() & 15];
  return s;
}

static OutputEvent text_event(OutputEvent::Kind kind, const std::string& text) {
  OutputEvent e;
  e.kind = kind;
  e.text = text;
  return e;
}

std::string new_call_id() { return "call_" + random_hex(24); }

OutputAssembler::OutputAssembler(std::vector<std::string> stop_strings)
    : stops_(std::move(stop_strings)) {}

void OutputAssembler::on_parsed(const ParsedEvent& ev, std::vector<OutputEvent>* out) {
  if (stopped_) return;
  switch (ev.kind) {
    case ParsedEvent::Kind::kMessageStart: {
      close_message(out);
      message_text_.clear();
      const std::string& r = ev.recipient;
      if (!r.empty() && r != "all" && r != "assistant") {
        route_ = Route::kToolCall;
        ToolCall call;
        call.id = new_call_id();
        call.name = r.rfind("functions.", 0) == 0 ? r.substr(10) : r;
        calls_.push_back(call);
        OutputEvent o{OutputEvent::Kind::kToolCallStart, "", static_cast<int>(calls_.size()) - 1,
                      call.id, call.name};
        out->push_back(std::move(o));
      } else if (ev.channel == "analysis") {
        route_ = Route::kReasoning;
      } else {
        route_ = Route::kContent;  // final, a commentary preamble, or an unknown channel
      }
      break;
    }
    case ParsedEvent::Kind::kContentDelta: {
      if (ev.text.empty()) break;
      if (route_ == Route::kNone) route_ = Route::kContent;
      if (route_ == Route::kReasoning) {
        message_text_ += ev.text;
        reasoning_ += ev.text;
        out->push_back(text_event(OutputEvent::Kind::kReasoningDelta, ev.text));
      } else if (route_ == Route::kToolCall) {
        message_text_ += ev.text;
        calls_.back().arguments += ev.text;
        OutputEvent o{OutputEvent::Kind::kToolCallDelta, ev.text,
                      static_cast<int>(calls_.size()) - 1, calls_.back().id, calls_.back().name};
        out->push_back(std::move(o));
      } else if (route_ == Route::kContent) {
        emit_content(ev.text, out);
      }
      break;
    }
    case ParsedEvent::Kind::kMessageEnd:
      close_message(out);
      break;
  }
}

void OutputAssembler::on_unparsed_text(const std::string& text, std::vector<OutputEvent>* out) {
  if (stopped_ || text.empty()) return;
  close_message(out);
  route_ = Route::kContent;
  emit_content(text, out);
}

void OutputAssembler::close_message(std::vector<OutputEvent>* out) {
  switch (route_) {
    case Route::kReasoning:
      out->push_back(text_event(OutputEvent::Kind::kReasoningDone, message_text_));
      break;
    case Route::kToolCall: {
      OutputEvent o{OutputEvent::Kind::kToolCallDone, calls_.back().arguments,
                    static_cast<int>(calls_.size()) - 1, calls_.back().id, calls_.back().name};
      out->push_back(std::move(o));
      break;
    }
    case Route::kContent:
      flush_content(out);
      out->push_back(text_event(OutputEvent::Kind::kContentDone, message_text_));
      break;
    default:
      break;
  }
  route_ = Route::kNone;
  message_text_.clear();
}

void OutputAssembler::emit_content(const std::string& text, std::vector<OutputEvent>* out) {
  held_ += text;
  if (stops_.empty()) {
    flush_content(out);
    return;
  }
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    size_t p = held_.find(s);
    if (p != std::string::npos && (cut == std::string::npos || p < cut)) cut = p;
  }
  if (cut != std::string::npos) {
    held_.resize(cut);
    close_message(out);
    stopped_ = true;
    route_ = Route::kDropped;
    return;
  }
  // Keep back the longest suffix that is a prefix of a stop string.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
    }
  }
  if (held_.size() > keep) {
    std::string ready = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    content_ += ready;
    message_text_ += ready;
    out->push_back(text_event(OutputEvent::Kind::kContentDelta, ready));
  }
}

void OutputAssembler::flush_content(std::vector<OutputEvent>* out) {
  if (!held_.empty()) {
    content_ += held_;
    message_text_ += held_;
    out->push_back(text_event(OutputEvent::Kind::kContentDelta, held_));
    held_.clear();
  }
}

void OutputAssembler::finish(engine::FinishReason reason, std::vector<OutputEvent>* out) {
  if (finished_) return;
  close_message(out);
  flush_content(out);
  finished_ = true;
  reason_ = reason;
}

std::string OutputAssembler::finish_reason() const {
  if (stopped_) return "stop";
  if (reason_ == engine::FinishReason::kLength || reason_ == engine::FinishReason::kContextFull) {
    return "length";
  }
  if (!calls_.empty()) return "tool_calls";
  return "stop";
}

}  // namespace gptoss::server
