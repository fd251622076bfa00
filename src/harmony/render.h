// Conversation -> prompt tokens, exactly as openai-harmony renders them
// (reference/harmony-and-apis.md §1.2-§4). Each text piece (role, " to=...", channel, content
// type, content) is encoded on its own with ordinary BPE; formatting tokens are inserted as ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "harmony/conversation.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::harmony {

// The o200k_harmony formatting tokens.
namespace tok {
inline constexpr uint32_t kReturn = 200002;
inline constexpr uint32_t kConstrain = 200003;
inline constexpr uint32_t kChannel = 200005;
inline constexpr uint32_t kStart = 200006;
inline constexpr uint32_t kEnd = 200007;
inline constexpr uint32_t kMessage = 200008;
inline constexpr uint32_t kCall = 200012;
}  // namespace tok

// "<|start|>" for 200006 etc.; empty for ids that are not one of the formatting tokens above.
std::string_view formatting_token_text(uint32_t id);

// Which analysis (chain-of-thought) messages are left out of a rendered history.
enum class DropAnalysis {
  kNone,             // keep everything (harmony auto_drop_analysis=false)
  kReference,        // harmony's auto_drop_analysis=true, the Python default: only when the last
                     // assistant message is `final`, drop analysis before the FIRST final
  kBeforeLastFinal,  // vLLM's rule (harmony-and-apis.md §4.3): drop analysis before the LAST
                     // assistant final; the turn in progress keeps its analysis
};

struct RenderOptions {
  DropAnalysis drop_analysis = DropAnalysis::kReference;
};

// Where rendered pieces go: a special token, or a piece of text to encode on its own.
class RenderSink {
 public:
  virtual ~RenderSink() = default;
  virtual void special(uint32_t id) = 0;
  virtual void text(std::string_view text) = 0;
};

// One message; `has_function_tools` adds the "Calls to these tools must go to the commentary
// channel" line to a system message (harmony RenderOptions.conversation_has_function_tools).
Status render_message_into(const Message& m, bool has_function_tools, RenderSink& sink);
// The history (with analysis dropped per options); then, if `next_role` is given,
// `<|start|>{next_role}`. `for_training` ends a final assistant message with <|return|>.
Status render_conversation_into(const Conversation& c, const RenderOptions& options,
                                const std::optional<Role>& next_role, bool for_training,
                                RenderSink& sink);

// harmony render_conversation_for_completion: history + <|start|>assistant (for next=assistant).
Expected<std::vector<uint32_t>> render_for_completion(const Tokenizer& tok, const Conversation& c,
                                                      Role next = Role::kAssistant,
                                                      const RenderOptions& options = {});
// harmony render_conversation: the history only.
Expected<std::vector<uint32_t>> render_conversation(const Tokenizer& tok, const Conversation& c,
                                                    const RenderOptions& options = {});
// harmony render_conversation_for_training.
Expected<std::vector<uint32_t>> render_for_training(const Tokenizer& tok, const Conversation& c,
                                                    const RenderOptions& options = {});
// harmony render(message).
Expected<std::vector<uint32_t>> render_message(const Tokenizer& tok, const Message& m,
                                               bool has_function_tools = false);

// The same renders as text with the formatting tokens written literally ("<|start|>user...").
Expected<std::string> render_text_for_completion(const Conversation& c,
                                                 Role next = Role::kAssistant,
                                                 const RenderOptions& options = {});
Expected<std::string> render_text_conversation(const Conversation& c,
                                               const RenderOptions& options = {});

// True if a developer message defines at least one tool in the `functions` namespace.
bool has_function_tools(const Conversation& c);

}  // namespace gptoss::harmony
