#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace gptoss::cli {

// Add a command here when its cmd_<name>.cc lands (keep one line per command).
const std::vector<Command>& all_commands() {
  static const std::vector<Command> kCommands = {
      {"pull", cmd_pull, "download a model from the Hugging Face hub into the HF cache"},
      {"run", cmd_run, "chat with a model in the terminal (pulls it if needed); alias: chat"},
      {"chat", cmd_run, "same as run"},
      {"generate", cmd_generate, "one answer to a prompt, streamed (--json: messages, usage, timings)"},
      {"bench", cmd_bench, "prefill (ppN) and decode (tgN) tokens/s in llama-bench's table"},
      {"harmony", cmd_harmony, "render a conversation to a Harmony prompt; parse generated ids into messages"},
      {"tokenize", cmd_tokenize, "print the o200k_harmony token ids of a text (JSON array)"},
      {"detokenize", cmd_detokenize, "print the text of token ids"},
      {"info", cmd_info, "show a model directory: layout, config, tensors, weight bytes, parameters"},
      {"serve", cmd_serve, "serve the model over the OpenAI and Ollama HTTP APIs (chat, responses, tools)"},
      {"logits", cmd_logits, "run token ids through the model; write every position's logits (safetensors)"},
      {"quantize-q8", cmd_quantize_q8, "convert one tensor to GGUF Q8_0 blocks as --dense-weights q8 does (raw bytes)"},
  };
  return kCommands;
}

int fail(const std::string& cmd, const std::string& message, int code) {
  std::fprintf(stderr, "gptoss %s: %s\n", cmd.c_str(), message.c_str());
  return code;
}

static void print_usage() {
  std::printf("gptoss: run OpenAI's gpt-oss models locally\n\nusage: gptoss <command> [options]\n\n");
  for (const auto& c : all_commands()) std::printf("  %-12s %s\n", c.name, c.summary);
  std::printf("\nRun 'gptoss <command> --help' for a command's options.\n");
}

}  // namespace gptoss::cli

int main(int argc, char** argv) {
  using namespace gptoss::cli;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("gptoss 0.1.0\n");
    return 0;
  }
  std::string name = argv[1];
  std::vector<std::string> rest(argv + 2, argv + argc);
  for (const auto& c : all_commands()) {
    if (name == c.name) return c.fn(rest);
  }
  std::fprintf(stderr, "gptoss: unknown command '%s'\n", name.c_str());
  print_usage();
  return 2;
}
