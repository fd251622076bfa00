// ChatRequest -> harmony Conversation, by the rules in reference/harmony-and-apis.md §4:
// system message (reasoning effort, today's date), developer message (instructions from the
// system/developer messages, function tools, response format), reasoning replayed as analysis,
// tool calls as commentary messages to functions.NAME, tool results from functions.NAME. Render it
// with harmony::DropAnalysis::kBeforeLastFinal (vLLM's rule: every analysis before the last final
// is dropped; the turn in progress keeps its chain of thought).
#pragma once

#include <string>
#include <vector>

#include "harmony/conversation.h"
#include "server/chat_request.h"

namespace gptoss::server {

struct PromptOptions {
  std::string current_date;  // "YYYY-MM-DD"; empty: today (UTC)
};

harmony::Conversation build_conversation(const ChatRequest& req, const PromptOptions& opts = {});

// Header text the server appends after "<|start|>assistant" to force a call to one function
// (tool_choice naming a function): "<|channel|>commentary to=functions.NAME <|constrain|>json
// <|message|>" without the spaces around the specials. Empty when nothing is forced.
std::string forced_call_prefix(const ChatRequest& req);

}  // namespace gptoss::server
