#include "server/harmony_codec.h"

#include "harmony/parser.h"
#include "harmony/render.h"

namespace gptoss::server {

std::vector<uint32_t> harmony_stop_tokens() { return {harmony::tok::kReturn, harmony::tok::kCall}; }

Expected<RenderedPrompt> render_chat_prompt(const Tokenizer& tok, const ChatRequest& req,
                                            const PromptOptions& opts) {
  harmony::Conversation conv = build_conversation(req, opts);
  harmony::RenderOptions ro;
  ro.drop_analysis = harmony::DropAnalysis::kBeforeLastFinal;
  GPTOSS_ASSIGN_OR_RETURN(std::vector<uint32_t> tokens,
                          harmony::render_for_completion(tok, conv, harmony::Role::kAssistant, ro));
  RenderedPrompt p;
  p.tokens = std::move(tokens);
  std::string forced = forced_call_prefix(req);
  if (!forced.empty()) p.forced = tok.encode_with_special(forced);
  return p;
}

namespace {

class HarmonyOutputParser : public OutputParser {
 public:
  explicit HarmonyOutputParser(std::shared_ptr<const Tokenizer> tok)
      : tok_(std::move(tok)), parser_(*tok_) {}

  void push(uint32_t token, std::vector<ParsedEvent>* out) override {
    events_.clear();
    parser_.push(token, events_);
    convert(out);
  }
  void finish(std::vector<ParsedEvent>* out) override {
    events_.clear();
    parser_.finish(events_);
    convert(out);
  }

 private:
  void convert(std::vector<ParsedEvent>* out) {
    for (auto& e : events_) {
      ParsedEvent p;
      switch (e.kind) {
        case harmony::ParseEvent::Kind::kMessageStart:
          p.kind = ParsedEvent::Kind::kMessageStart;
          break;
        case harmony::ParseEvent::Kind::kContentDelta:
          p.kind = ParsedEvent::Kind::kContentDelta;
          p.text = std::move(e.text);
          break;
        case harmony::ParseEvent::Kind::kMessageEnd:
          p.kind = ParsedEvent::Kind::kMessageEnd;
          break;
        default:
          continue;  // stop and problem events: the engine reports the finish reason
      }
      if (e.kind != harmony::ParseEvent::Kind::kContentDelta) {
        p.channel = e.header.channel.value_or("");
        p.recipient = e.header.recipient.value_or("");
        p.content_type = e.header.content_type.value_or("");
      }
      out->push_back(std::move(p));
    }
  }

  std::shared_ptr<const Tokenizer> tok_;  // outlives parser_
  harmony::Parser parser_;
  std::vector<harmony::ParseEvent> events_;
};

}  // namespace

std::unique_ptr<OutputParser> new_output_parser(std::shared_ptr<const Tokenizer> tok) {
  return std::make_unique<HarmonyOutputParser>(std::move(tok));
}

}  // namespace gptoss::server
