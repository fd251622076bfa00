// JSON Schema -> TypeScript and serde_json number formatting. Expected strings come from
// openai-harmony's golden file test_render_functions_with_parameters.txt and Rust's ryu docs;
// tests/py/test_harmony_render.py checks many more schemas against the openai-harmony package.
#include "harmony/schema_ts.h"

#include <gtest/gtest.h>

namespace gptoss::harmony {
namespace {

TEST(SchemaTs, WeatherToolFromGolden) {
  auto schema = ojson::parse(
      R"({"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},)"
      R"("format":{"type":"string","enum":["celsius","fahrenheit"],"default":"celsius"}},"required":["location"]})");
  EXPECT_EQ(json_schema_to_typescript(schema),
            "{\n// The city and state, e.g. San Francisco, CA\nlocation: string,\n"
            "format?: \"celsius\" | \"fahrenheit\", // default: celsius\n}");
}

TEST(SchemaTs, KitchensinkFromGolden) {
  auto schema = ojson::parse(
      R"({"description":"params object","type":"object","properties":{"string":{"type":"string","title":"STRING","description":"A string","examples":["hello","world"]},)"
      R"("string_nullable":{"type":"string","nullable":true,"description":"A nullable string","default":"the default"},)"
      R"("string_enum":{"type":"string","enum":["a","b","c"]},)"
      R"("oneof_string_or_number":{"oneOf":[{"type":"string","default":"default_string_in_oneof"},{"type":"number","description":"numbers can happen too"}],"description":"a oneof","default":20}}})");
  EXPECT_EQ(
      json_schema_to_typescript(schema),
      "// params object\n{\n// STRING\n//\n// A string\n// Examples:\n// - \"hello\"\n// - "
      "\"world\"\n"
      "string?: string,\n// A nullable string\nstring_nullable?: string | null, // default: \"the "
      "default\"\n"
      "string_enum?: \"a\" | \"b\" | \"c\",\n// a oneof\n// default: 20\noneof_string_or_number?:\n"
      " | string // default: \"default_string_in_oneof\"\n | number // numbers can happen "
      "too\n,\n}");
}

TEST(SchemaTs, SimpleTypes) {
  EXPECT_EQ(
      json_schema_to_typescript(ojson::parse(R"({"type":"array","items":{"type":"integer"}})")),
      "number[]");
  EXPECT_EQ(json_schema_to_typescript(ojson::parse(R"({"type":"array"})")), "Array<any>");
  EXPECT_EQ(json_schema_to_typescript(ojson::parse(R"({"type":["integer","null"]})")),
            "number | null");
  EXPECT_EQ(json_schema_to_typescript(ojson::parse(R"({"anyOf":[{"type":"string"}]})")), "any");
  EXPECT_EQ(json_schema_to_typescript(ojson::parse(R"({"type":"object"})")), "{\n}");
}

TEST(SchemaTs, RustFloatLayout) {
  // ryu: integers up to 16 digits get ".0", larger ones and tiny ones use e-notation.
  EXPECT_EQ(rust_float(1.0), "1.0");
  EXPECT_EQ(rust_float(-0.0), "-0.0");
  EXPECT_EQ(rust_float(0.1), "0.1");
  EXPECT_EQ(rust_float(1e15), "1000000000000000.0");
  EXPECT_EQ(rust_float(1e16), "1e16");
  EXPECT_EQ(rust_float(1.5e-7), "1.5e-7");
  EXPECT_EQ(rust_float(0.001234), "0.001234");
  EXPECT_EQ(rust_float(123456.789), "123456.789");
  EXPECT_EQ(rust_float(1.2345e30), "1.2345e30");
}

TEST(SchemaTs, CompactJsonLikeSerde) {
  auto v = ojson::parse(R"({"b":[1,-2,3.5,true,null],"a":"x\"y\n\u0001é"})");
  EXPECT_EQ(serde_json_compact(v),
            "{\"b\":[1,-2,3.5,true,null],\"a\":\"x\\\"y\\n\\u0001\xC3\xA9\"}");
}

}  // namespace
}  // namespace gptoss::harmony
