// JSON Schema -> the TypeScript-like text Harmony puts in the tools section, byte for byte as
// openai-harmony's `json_schema_to_typescript` writes it (reference/harmony-and-apis.md §3.2),
// quirks included: property order is input order, oneOf variants get trailing comments, string
// defaults are quoted except on enums, other defaults are compact JSON as serde_json prints them.
#pragma once

#include <string>

#include "harmony/conversation.h"

namespace gptoss::harmony {

std::string json_schema_to_typescript(const ojson& schema, const std::string& indent = "");

// Compact JSON exactly as serde_json's Display writes it: no spaces, non-ASCII kept as UTF-8,
// control characters as \uXXXX (lower-case hex) except \b \f \n \r \t, and floating-point
// numbers in Rust's shortest form (`1.0`, `1e20`, `1.5e-7`, `0.001`).
std::string serde_json_compact(const ojson& value);

// A double in Rust's `ryu` format (what serde_json prints for f64).
std::string rust_float(double value);

// The `# Tools` section for a set of namespaces (§2.3), used by system and developer content.
std::string render_tools_section(const ToolNamespaces& tools);

}  // namespace gptoss::harmony
