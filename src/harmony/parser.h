// Streaming parser for generated Harmony tokens (reference/harmony-and-apis.md §5).
//
// Feed one token at a time; each push returns the events that token caused. On well-formed
// output the messages are exactly those of openai-harmony's StreamableParser (strict mode):
// the parser starts inside a header with the role given (a prompt ends `<|start|>assistant`),
// takes the recipient before or after `<|channel|>`, `<|constrain|>json` with or without a space,
// and closes a message on <|end|>, <|return|> or <|call|> (the last two also stop generation).
//
// It never fails. Malformed output (harmony-and-apis.md §5.3, §8) is reported as a kProblem
// event and parsing carries on without dropping content: text outside any message becomes an
// assistant message, a header closed by a terminator without <|message|> keeps its text as the
// content, <|start|> or <|channel|> inside content starts a new message, a lone
// `<|constrain|>json` is a content type (not a recipient), a repeated <|channel|> is removed from
// the recipient, unknown ids and invalid UTF-8 become U+FFFD.
//
// Content deltas are always whole UTF-8 characters; their concatenation is the message content.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harmony/conversation.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::harmony {

struct MessageHeader {
  Role role = Role::kAssistant;
  std::optional<std::string> name;  // author name of a tool message ("functions.get_weather")
  std::optional<std::string> recipient;
  std::optional<std::string> channel;
  std::optional<std::string> content_type;
};

enum class StopReason { kNone, kReturn, kCall, kEndOfStream };
const char* stop_reason_name(StopReason r);  // "none" "return" "call" "eos"

struct ParseEvent {
  enum class Kind { kMessageStart, kContentDelta, kMessageEnd, kStop, kProblem };
  Kind kind = Kind::kProblem;
  MessageHeader header;     // kMessageStart, kMessageEnd
  std::string text;         // kContentDelta: new text; kProblem: what was wrong and where
  uint32_t terminator = 0;  // kMessageEnd: the token that closed it, 0 if none did
  StopReason stop = StopReason::kNone;  // kStop
};

struct ParserOptions {
  // The role of the first message, whose header starts right after the prompt's
  // `<|start|>assistant`. nullopt: expect `<|start|>` first.
  std::optional<Role> role = Role::kAssistant;
};

class Parser {
 public:
  enum class State { kExpectStart, kHeader, kContent };

  // The tokenizer must outlive the parser.
  explicit Parser(const Tokenizer& tokenizer, ParserOptions options = {});

  std::vector<ParseEvent> push(uint32_t token);
  void push(uint32_t token, std::vector<ParseEvent>& out);
  // End of generation (stop token seen, length limit, or the engine gave up).
  std::vector<ParseEvent> finish();
  void finish(std::vector<ParseEvent>& out);

  const std::vector<Message>& messages() const { return messages_; }
  const std::vector<std::string>& problems() const { return problems_; }
  State state() const { return state_; }
  // The open message's header (valid in kContent) and its text so far.
  const MessageHeader& current_header() const { return header_; }
  const std::string& current_content() const { return content_; }
  // Set by the first <|return|> / <|call|>, or kEndOfStream by finish().
  StopReason stop_reason() const { return stop_; }
  size_t tokens_seen() const { return index_; }

 private:
  void problem(std::vector<ParseEvent>& out, const std::string& what);
  void begin_header(std::optional<Role> role, std::vector<uint32_t> tokens);
  void begin_content(const MessageHeader& h, std::vector<ParseEvent>& out);
  void content_token(uint32_t token, std::vector<ParseEvent>& out);
  void end_message(uint32_t terminator, std::vector<ParseEvent>& out);
  void on_stop_token(uint32_t token, std::vector<ParseEvent>& out);
  void header_complete(std::vector<ParseEvent>& out);
  void recover_header(uint32_t terminator, std::vector<ParseEvent>& out);
  std::string decode_header(std::vector<ParseEvent>& out);
  std::string token_name(uint32_t token) const;

  const Tokenizer& tok_;
  State state_;
  std::optional<Role> next_role_;
  std::vector<uint32_t> header_tokens_;
  MessageHeader header_;
  std::string carry_;    // bytes of an unfinished UTF-8 character
  std::string content_;  // text of the open message
  std::vector<Message> messages_;
  std::vector<std::string> problems_;
  StopReason stop_ = StopReason::kNone;
  size_t index_ = 0;  // tokens pushed so far
};

// What a server does with a message (harmony-and-apis.md §10.5): recipient first, then channel,
// so a call made on `analysis` (`analysis to=browser.search`) never leaks into the reasoning.
enum class MessageKind {
  kFunctionCall,  // assistant, recipient functions.NAME: a client tool call (name = the rest)
  kBuiltinCall,   // assistant, any other recipient (browser.*, python, ...): run by the server
  kReasoning,     // assistant analysis without recipient: chain of thought, never shown as content
  kPreamble,      // assistant commentary without recipient: user-visible text before tool calls
  kFinal,         // assistant final (or no channel): the answer
  kToolResult,    // a tool's output (role tool)
  kOther,         // system, developer, user
};
MessageKind classify(const MessageHeader& header);
const char* message_kind_name(MessageKind kind);

// Generation stops on these (openai-harmony stop_tokens_for_assistant_actions); <|end|> is not one.
inline constexpr uint32_t kAssistantStopTokens[] = {200002 /*<|return|>*/, 200012 /*<|call|>*/};

struct ParseResult {
  std::vector<Message> messages;
  std::vector<std::string> problems;
  StopReason stop = StopReason::kNone;
};

// Push every token, then finish() (harmony parse_messages_from_completion_tokens).
ParseResult parse_completion(const Tokenizer& tokenizer, const std::vector<uint32_t>& tokens,
                             std::optional<Role> role = Role::kAssistant);

}  // namespace gptoss::harmony
