// gptoss tokenize / detokenize: text <-> o200k_harmony token ids, for debugging prompts and for
// tests. --jsonl runs many inputs in one process.
#include <fmt/format.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace gptoss::cli {
namespace {

constexpr const char kTokenizeUsage[] =
    "usage: gptoss tokenize [--model DIR | --vocab FILE] [--special] [--file F | --jsonl | TEXT]\n"
    "  Prints the token ids of TEXT (or of --file F, or of stdin) as a JSON array.\n"
    "  --model DIR   use DIR/tokenizer.json (the built-in o200k_harmony vocabulary if absent)\n"
    "  --vocab FILE  a .tiktoken rank file, or a tokenizer.json\n"
    "  --special     recognise special token strings such as <|start|> (off: they are plain text)\n"
    "  --jsonl       read lines of JSON (a string, or {\"hex\": bytes}) from --file or stdin;\n"
    "                print one JSON array per line\n"
    "  --bench N     instead of ids, print JSON timings: vocabulary load, then encode and decode "
    "of\n"
    "                the input N times (single thread; wall and CPU seconds)\n"
    "  Without --model and --vocab the built-in o200k_harmony vocabulary is used.\n";

constexpr const char kDetokenizeUsage[] =
    "usage: gptoss detokenize [--model DIR | --vocab FILE] [--stream] [--jsonl] [IDS...]\n"
    "  Prints the text of the token ids (arguments, or a JSON array on stdin) as raw bytes.\n"
    "  --stream  print a JSON array of the pieces a streaming decoder emits (whole characters)\n"
    "  --jsonl   read one JSON array of ids per line from stdin; print one line of JSON per "
    "input:\n"
    "            {\"hex\": the raw bytes, \"stream\": [pieces]}\n";

Expected<std::shared_ptr<const Tokenizer>> load_tokenizer(const Args& args) {
  if (args.has("--model") && args.has("--vocab")) return Error("give --model or --vocab, not both");
  if (auto dir = args.get("--model")) return Tokenizer::from_model_dir(*dir);
  if (auto file = args.get("--vocab")) {
    if (file->size() >= 5 && file->compare(file->size() - 5, 5, ".json") == 0) {
      return Tokenizer::from_tokenizer_json(*file);
    }
    return Tokenizer::from_tiktoken_file(*file);
  }
  return Tokenizer::builtin();
}

std::string ids_json(const std::vector<uint32_t>& ids) {
  return fmt::format("[{}]", fmt::join(ids, ","));
}

Expected<std::string> from_hex(const std::string& hex) {
  if (hex.size() % 2 != 0) return Error("hex string has an odd length");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = hex[2 * i + k];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return Error("'{}' is not a hex digit", c);
      v = v * 16 + static_cast<unsigned>(d);
    }
    out[i] = static_cast<char>(v);
  }
  return out;
}

std::string to_hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

Expected<std::string> read_input(const Args& args) {
  if (auto file = args.get("--file")) return read_text_file(*file);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// Parses a JSON array of ids (or one id per argument).
Expected<std::vector<uint32_t>> parse_ids(const nlohmann::json& j, const std::string& where) {
  if (!j.is_array()) return Error("{}: expected a JSON array of token ids", where);
  std::vector<uint32_t> ids;
  ids.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_unsigned() || j[i].get<uint64_t>() > 0xFFFFFFFFull) {
      return Error("{}[{}]: {} is not a token id", where, i, j[i].dump());
    }
    ids.push_back(j[i].get<uint32_t>());
  }
  return ids;
}

struct Clock {
  double wall = now_wall(), cpu = now_cpu();
  static double now_wall() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static double now_cpu() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  double wall_s() const { return now_wall() - wall; }
  double cpu_s() const { return now_cpu() - cpu; }
};

// --bench: encode and decode `text` n times; prints one JSON object.
int run_bench(const Tokenizer& t, const std::string& text, long long n, double load_wall,
              double load_cpu, bool special) {
  std::vector<uint32_t> ids;
  Clock enc;
  for (long long i = 0; i < n; ++i) ids = special ? t.encode_with_special(text) : t.encode(text);
  double enc_wall = enc.wall_s(), enc_cpu = enc.cpu_s();
  std::string back;
  Clock dec;
  for (long long i = 0; i < n; ++i) back = t.decode(ids);
  double dec_wall = dec.wall_s(), dec_cpu = dec.cpu_s();
  double mb = static_cast<double>(text.size()) * static_cast<double>(n) / 1e6;
  nlohmann::json j = {{"bytes", text.size()},
                      {"tokens", ids.size()},
                      {"repeat", n},
                      {"load_ms_wall", load_wall * 1e3},
                      {"load_ms_cpu", load_cpu * 1e3},
                      {"encode_s_wall", enc_wall},
                      {"encode_s_cpu", enc_cpu},
                      {"encode_MBps_cpu", mb / enc_cpu},
                      {"decode_s_wall", dec_wall},
                      {"decode_s_cpu", dec_cpu},
                      {"decode_MBps_cpu", mb / dec_cpu},
                      {"round_trip_equal", back == text}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int cmd_tokenize(const std::vector<std::string>& argv) {
  const std::string cmd = "tokenize";
  auto args = Args::parse(
      argv, {{"--special", "--jsonl", "--help"}, {"--model", "--vocab", "--file", "--bench"}});
  if (!args) return fail(cmd, args.status().message() + "\n" + kTokenizeUsage, 2);
  if (args->has("--help")) {
    std::fputs(kTokenizeUsage, stdout);
    return 0;
  }
  if (args->positional().size() > 1)
    return fail(cmd, std::string("give the text as one argument\n") + kTokenizeUsage, 2);
  if (!args->positional().empty() && (args->has("--file") || args->has("--jsonl"))) {
    return fail(cmd, std::string("give TEXT or --file/--jsonl, not both\n") + kTokenizeUsage, 2);
  }
  Clock load;
  auto tok = load_tokenizer(*args);
  double load_wall = load.wall_s(), load_cpu = load.cpu_s();
  if (!tok) return fail(cmd, tok.status().message());
  const bool special = args->has("--special");
  if (args->has("--bench")) {
    auto n = args->get_int("--bench", 1);
    if (!n || *n < 1) return fail(cmd, "--bench needs a positive count", 2);
    auto input = args->positional().empty() ? read_input(*args)
                                            : Expected<std::string>(args->positional()[0]);
    if (!input) return fail(cmd, input.status().message());
    return run_bench(**tok, *input, *n, load_wall, load_cpu, special);
  }
  auto encode = [&](std::string_view text) {
    return special ? (*tok)->encode_with_special(text) : (*tok)->encode(text);
  };
  if (!args->positional().empty()) {
    std::printf("%s\n", ids_json(encode(args->positional()[0])).c_str());
    return 0;
  }
  auto input = read_input(*args);
  if (!input) return fail(cmd, input.status().message());
  if (!args->has("--jsonl")) {
    std::printf("%s\n", ids_json(encode(*input)).c_str());
    return 0;
  }
  std::string out;
  size_t line_no = 0;
  for (size_t pos = 0; pos < input->size();) {
    size_t end = input->find('\n', pos);
    if (end == std::string::npos) end = input->size();
    std::string line = input->substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    std::string text;
    if (j.is_string()) {
      text = j.get<std::string>();
    } else if (j.is_object() && j.contains("hex") && j["hex"].is_string()) {
      auto bytes = from_hex(j["hex"].get<std::string>());
      if (!bytes) return fail(cmd, fmt::format("line {}: {}", line_no, bytes.status().message()));
      text = std::move(*bytes);
    } else {
      return fail(cmd,
                  fmt::format("line {}: expected a JSON string or {{\"hex\": \"...\"}}", line_no));
    }
    out += ids_json(encode(text));
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int cmd_detokenize(const std::vector<std::string>& argv) {
  const std::string cmd = "detokenize";
  auto args = Args::parse(argv, {{"--stream", "--jsonl", "--help"}, {"--model", "--vocab"}});
  if (!args) return fail(cmd, args.status().message() + "\n" + kDetokenizeUsage, 2);
  if (args->has("--help")) {
    std::fputs(kDetokenizeUsage, stdout);
    return 0;
  }
  auto tok = load_tokenizer(*args);
  if (!tok) return fail(cmd, tok.status().message());
  const Tokenizer& t = **tok;
  auto stream_pieces = [&](const std::vector<uint32_t>& ids) {
    nlohmann::json pieces = nlohmann::json::array();
    StreamDecoder dec(t);
    for (uint32_t id : ids) pieces.push_back(dec.push(id));
    pieces.push_back(dec.flush());
    return pieces;
  };

  std::vector<std::vector<uint32_t>> batches;
  if (!args->positional().empty()) {
    if (args->has("--jsonl"))
      return fail(cmd, std::string("--jsonl reads stdin; give no ids\n") + kDetokenizeUsage, 2);
    std::vector<uint32_t> ids;
    for (const auto& a : args->positional()) {
      nlohmann::json j = nlohmann::json::parse(a, nullptr, false);
      if (j.is_array()) {
        auto more = parse_ids(j, "argument");
        if (!more) return fail(cmd, more.status().message(), 2);
        ids.insert(ids.end(), more->begin(), more->end());
      } else if (j.is_number_unsigned() && j.get<uint64_t>() <= 0xFFFFFFFFull) {
        ids.push_back(j.get<uint32_t>());
      } else {
        return fail(cmd, fmt::format("'{}' is not a token id\n{}", a, kDetokenizeUsage), 2);
      }
    }
    batches.push_back(std::move(ids));
  } else {
    std::string input(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>{});
    if (args->has("--jsonl")) {
      size_t line_no = 0;
      for (size_t pos = 0; pos < input.size();) {
        size_t end = input.find('\n', pos);
        if (end == std::string::npos) end = input.size();
        std::string line = input.substr(pos, end - pos);
        pos = end + 1;
        ++line_no;
        if (line.empty()) continue;
        auto ids = parse_ids(nlohmann::json::parse(line, nullptr, false),
                             fmt::format("stdin line {}", line_no));
        if (!ids) return fail(cmd, ids.status().message(), 2);
        batches.push_back(std::move(*ids));
      }
    } else {
      auto ids = parse_ids(nlohmann::json::parse(input, nullptr, false), "stdin");
      if (!ids) return fail(cmd, ids.status().message(), 2);
      batches.push_back(std::move(*ids));
    }
  }

  std::string out;
  for (const auto& ids : batches) {
    auto text = t.decode_checked(ids);
    if (!text) return fail(cmd, text.status().message());
    if (args->has("--jsonl")) {
      nlohmann::json line = {{"hex", to_hex(*text)}, {"stream", stream_pieces(ids)}};
      out += line.dump() + "\n";
    } else if (args->has("--stream")) {
      out += stream_pieces(ids).dump() + "\n";
    } else {
      out += *text;
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace gptoss::cli
