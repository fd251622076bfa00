// The server's use of the harmony library: requests rendered to prompt tokens, and generated
// tokens parsed into ParsedEvents for the OutputAssembler.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/chat_request.h"
#include "server/output_assembler.h"
#include "server/prompt_builder.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::server {

// Harmony's stop tokens for an assistant turn: <|return|> and <|call|>.
std::vector<uint32_t> harmony_stop_tokens();

// A streaming parser over generated token ids (the model output after "<|start|>assistant").
class OutputParser {
 public:
  virtual ~OutputParser() = default;
  virtual void push(uint32_t token, std::vector<ParsedEvent>* out) = 0;
  // The generation ended: closes an open message (a header that never reached <|message|> is
  // recovered as content by the harmony parser).
  virtual void finish(std::vector<ParsedEvent>* out) = 0;
};

struct RenderedPrompt {
  std::vector<uint32_t> tokens;
  // Tokens appended after <|start|>assistant to force a tool call; feed them to the parser first.
  std::vector<uint32_t> forced;
};

Expected<RenderedPrompt> render_chat_prompt(const Tokenizer& tok, const ChatRequest& req,
                                            const PromptOptions& opts);
std::unique_ptr<OutputParser> new_output_parser(std::shared_ptr<const Tokenizer> tok);

}  // namespace gptoss::server
