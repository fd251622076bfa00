// gptoss quantize-q8 FILE.safetensors --tensor NAME --out FILE.bin [--threads N]
// Converts one BF16/F32 tensor to GGUF Q8_0 blocks through the same code as --dense-weights q8 at
// load (model/dense_q8.h: slices over threads) and writes the raw blocks, so that anyone can compare
// them with another Q8_0 quantizer (tests do, with gguf-py). Prints the accuracy figures the
// conversion measured as JSON on stdout.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "formats/safetensors.h"
#include "model/dense_q8.h"

namespace gptoss::cli {

namespace {

constexpr const char* kUsage =
    "usage: gptoss quantize-q8 FILE.safetensors --tensor NAME --out FILE.bin [--threads N]\n"
    "  Converts tensor NAME (BF16 or F32, 1-D or 2-D, rows a multiple of 32 weights) to GGUF Q8_0\n"
    "  blocks (fp16 scale + 32 int8 per 32 weights) exactly as `--dense-weights q8` does at load, and\n"
    "  writes the raw blocks to FILE.bin. Prints {rows, cols, bytes, rel_rms_error, max_abs_error}.\n"
    "  --threads N   conversion threads (default 2)\n";

}  // namespace

int cmd_quantize_q8(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {{"--help", "-h"}, {"--tensor", "--out", "--threads"}});
  if (!args) return fail("quantize-q8", args.status().message() + "\n" + kUsage, 2);
  if (args->has("--help") || args->has("-h")) {
    std::printf("%s", kUsage);
    return 0;
  }
  const auto name = args->get("--tensor");
  const auto out = args->get("--out");
  if (args->positional().size() != 1 || !name || !out) {
    return fail("quantize-q8", std::string("expected FILE.safetensors, --tensor and --out\n") + kUsage, 2);
  }
  auto threads = args->get_int("--threads", 2);
  if (!threads) return fail("quantize-q8", threads.status().message(), 2);
  if (*threads < 1 || *threads > 1024) return fail("quantize-q8", "--threads must be in [1, 1024]", 2);
  auto store = TensorStore::open({args->positional()[0]});
  if (!store) return fail("quantize-q8", store.status().message());
  const TensorView* t = store->find(*name);
  if (!t) return fail("quantize-q8", fmt::format("{}: no tensor '{}'", args->positional()[0], *name));
  if (t->shape.empty() || t->shape.size() > 2) {
    return fail("quantize-q8", fmt::format("{}: tensor '{}' has shape {}; expected 1-D or 2-D", t->file, *name,
                                           shape_to_string(t->shape)));
  }
  const int64_t rows = t->shape.size() == 1 ? 1 : t->shape[0], cols = t->shape.back();
  auto backend = make_cpu_backend(1);
  Q8ClassStats stats;
  auto w = convert_to_q8_0(*t, rows, cols, *backend, static_cast<int>(*threads), &stats);
  if (!w) return fail("quantize-q8", w.status().message());
  std::ofstream f(*out, std::ios::binary | std::ios::trunc);
  if (!f) return fail("quantize-q8", fmt::format("cannot write {}: {}", *out, std::strerror(errno)));
  f.write(static_cast<const char*>(w->buf.data), static_cast<std::streamsize>(w->buf.bytes));
  f.close();
  if (!f) return fail("quantize-q8", fmt::format("writing {} failed: {}", *out, std::strerror(errno)));
  const nlohmann::json j = {{"rows", rows},
                            {"cols", cols},
                            {"bytes", w->buf.bytes},
                            {"rel_rms_error", stats.rel_rms()},
                            {"max_abs_error", stats.max_abs_err}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace gptoss::cli
