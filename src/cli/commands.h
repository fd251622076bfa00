// Every subcommand of the gptoss binary: one function per file cmd_<name>.cc.
// A command returns the process exit code (0 ok, 1 runtime error, 2 usage error).
#pragma once

#include <string>
#include <vector>

namespace gptoss::cli {

using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  CommandFn fn;
  const char* summary;
};

int cmd_tokenize(const std::vector<std::string>& args);
int cmd_detokenize(const std::vector<std::string>& args);
int cmd_logits(const std::vector<std::string>& args);
int cmd_quantize_q8(const std::vector<std::string>& args);

int cmd_harmony(const std::vector<std::string>& args);
int cmd_serve(const std::vector<std::string>& args);

int cmd_info(const std::vector<std::string>& args);

int cmd_generate(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);

// Registered in main.cc.
const std::vector<Command>& all_commands();

// Prints "gptoss <cmd>: <message>" to stderr; returns the exit code to use.
int fail(const std::string& cmd, const std::string& message, int code = 1);

int cmd_pull(const std::vector<std::string>& args);

}  // namespace gptoss::cli
