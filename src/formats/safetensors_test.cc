// Safetensors header parsing: valid files and every malformed-header case, built byte by byte.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

namespace gptoss {
namespace {

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

std::string image(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

Expected<SafetensorsHeader> parse(const std::string& bytes) {
  return parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.st");
}

// Expects an error whose message contains every fragment.
void expect_error(const std::string& bytes, std::initializer_list<const char*> fragments) {
  auto r = parse(bytes);
  ASSERT_FALSE(r.has_value()) << "parsed without error";
  for (const char* f : fragments)
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message '" << r.status().message() << "' lacks '" << f << "'";
  EXPECT_EQ(r.status().message().rfind("t.st", 0), 0u) << r.status().message();
}

const std::string kTwo =
    R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]},"__metadata__":{"format":"pt"}})";

TEST(Safetensors, ParsesValidFile) {
  std::string data;
  for (int i = 0; i < 16; ++i) data.push_back(static_cast<char>(i));
  std::string bytes = image(kTwo, data);
  auto r = parse(bytes);
  ASSERT_TRUE(r.has_value()) << r.status().message();
  ASSERT_EQ(r->tensors.size(), 2u);
  const auto& a = r->tensors[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.dtype, DType::kBF16);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.numel(), 6);
  EXPECT_EQ(a.nbytes, 12u);
  EXPECT_EQ(a.data, reinterpret_cast<const uint8_t*>(bytes.data()) + 8 + kTwo.size());
  const auto& b = r->tensors[1];
  EXPECT_EQ(b.data[0], 12);
  EXPECT_EQ(b.data[3], 15);
  EXPECT_EQ(r->metadata.at("format"), "pt");
  EXPECT_EQ(r->data_start, 8 + kTwo.size());
}

TEST(Safetensors, AcceptsEmptyHeaderScalarAndZeroSizedTensors) {
  auto r = parse(image("{}", ""));
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_TRUE(r->tensors.empty());
  // Trailing spaces pad headers to 8 bytes in files written by the reference implementation.
  std::string h =
      R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}}   )";
  auto r2 = parse(image(h, std::string(4, '\0')));
  ASSERT_TRUE(r2.has_value()) << r2.status().message();
  ASSERT_EQ(r2->tensors.size(), 2u);
}

TEST(Safetensors, FileTooShortForLength) {
  expect_error("", {"too short"});
  expect_error(std::string(7, '\0'), {"too short"});
}

TEST(Safetensors, AbsurdHeaderLength) {
  expect_error(le64(uint64_t{1} << 60) + "{}", {"absurd"});
  expect_error(le64(100'000'001) + "{}", {"absurd"});
}

TEST(Safetensors, HeaderLengthPastEndOfFile) {
  expect_error(le64(1000) + kTwo, {"header length 1000 exceeds"});
}

TEST(Safetensors, BadJson) {
  expect_error(image(R"({"a":{"dtype":"BF16",)", ""), {"not valid JSON"});
  expect_error(image("\xff\xfe garbage", ""), {"not valid JSON"});
}

TEST(Safetensors, MessagesStayPrintable) {
  auto r = parse(image("{\"a\xcf\": 1}", ""));
  ASSERT_FALSE(r.has_value());
  for (unsigned char ch : r.status().message()) EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << int(ch);
  EXPECT_EQ(printable("a\xcf\n"), "a\\xcf\\x0a");
}

TEST(Safetensors, NonObjectHeader) {
  expect_error(image("[1,2,3]", ""), {"must be a JSON object"});
  expect_error(image(R"({"a":[0,1]})", ""), {"tensor 'a'", "must be an object"});
}

TEST(Safetensors, UnknownDtype) {
  expect_error(image(R"({"a":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}})", "x"),
               {"tensor 'a'", "dtype 'Q4_K'"});
  expect_error(image(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", "x"), {"dtype"});
}

TEST(Safetensors, MissingOrMalformedFields) {
  expect_error(image(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"), {"\"dtype\""});
  expect_error(image(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"), {"\"shape\""});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[1]}})", "x"), {"data_offsets"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "x"),
               {"negative"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "x"),
               {"non-integer"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"),
               {"data_offsets"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,-1]}})", "x"),
               {"data_offsets"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}})", "x"),
               {"end before begin"});
  expect_error(image(R"({"__metadata__":{"k":1}})", ""), {"__metadata__"});
  expect_error(image(R"({"__metadata__":[]})", ""), {"__metadata__"});
}

TEST(Safetensors, AbsurdShapeDoesNotOverflow) {
  expect_error(
      image(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
            std::string(8, '\0')),
      {"absurdly large"});
  expect_error(image(R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,8]}})",
                     std::string(8, '\0')),
               {"absurdly large"});
}

TEST(Safetensors, OffsetsDisagreeWithDtypeAndShape) {
  expect_error(
      image(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,6]}})", std::string(6, '\0')),
      {"tensor 'a'", "hold 6 bytes", "needs 12"});
}

TEST(Safetensors, OverlappingOffsets) {
  std::string h = R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  expect_error(image(h, std::string(8, '\0')), {"'b'", "overlaps", "'a'"});
}

TEST(Safetensors, OffsetsPastEndOfData) {
  std::string h = R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})";
  expect_error(image(h, std::string(10, '\0')), {"tensor 'b'", "past the end", "truncated"});
  expect_error(
      image(
          R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551614,18446744073709551615]}})",
          "x"),
      {"tensor 'a'"});
}

TEST(Safetensors, GapsAndLeftoverBytes) {
  std::string gap = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})";
  expect_error(image(gap, std::string(10, '\0')), {"gap of 2 bytes", "'a'", "'b'"});
  std::string front = R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})";
  expect_error(image(front, std::string(6, '\0')), {"gap of 2 bytes before the first tensor 'b'"});
  std::string tail = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  expect_error(image(tail, std::string(7, '\0')), {"3 bytes of data after the last tensor"});
}

TEST(Safetensors, DuplicateNames) {
  std::string h = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                  R"("a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})";
  expect_error(image(h, std::string(8, '\0')), {"'a' twice"});
}

// Every single-byte corruption of a valid file parses or fails cleanly, never reading outside it
// (run under ASan in the sanitizer build).
TEST(Safetensors, SingleByteCorruptionsNeverCrash) {
  std::string data(16, '\x01');
  const std::string good = image(kTwo, data);
  std::mt19937 rng(1234);
  int errors = 0;
  for (size_t pos = 0; pos < 8 + kTwo.size(); ++pos) {
    for (int k = 0; k < 4; ++k) {
      std::string bad = good;
      bad[pos] = static_cast<char>(rng() & 0xff);
      // A heap copy of exact size so ASan catches any read past the end.
      std::vector<uint8_t> buf(bad.begin(), bad.end());
      auto r = parse_safetensors(buf.data(), buf.size(), "t.st");
      if (!r) ++errors;
    }
  }
  for (size_t cut = 0; cut < good.size(); ++cut) {
    std::vector<uint8_t> buf(good.begin(), good.begin() + static_cast<long>(cut));
    auto r = parse_safetensors(buf.data(), buf.size(), "t.st");
    EXPECT_FALSE(r.has_value()) << "truncated to " << cut << " bytes parsed";
  }
  EXPECT_GT(errors, 0);
}

class TensorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("gptoss_st_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::filesystem::path dir_;
};

TEST_F(TensorStoreTest, OpensSeveralFilesAndValidatesAccess) {
  auto f1 = write("a.safetensors", image(kTwo, std::string(16, '\x02')));
  auto f2 = write(
      "b.safetensors",
      image(R"({"c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  auto store = TensorStore::open({f1, f2});
  ASSERT_TRUE(store.has_value()) << store.status().message();
  EXPECT_EQ(store->size(), 3u);
  EXPECT_EQ(store->names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(store->total_bytes(), 24u);
  EXPECT_EQ(store->find("nope"), nullptr);
  ASSERT_NE(store->find("c"), nullptr);
  EXPECT_EQ(store->find("c")->file, f2);
  EXPECT_EQ(store->find("a")->data[0], 2);
  EXPECT_EQ(store->file_offset(*store->find("b")), static_cast<int64_t>(8 + kTwo.size() + 12));
  EXPECT_EQ(
      store->file_offset(*store->find("c")),
      static_cast<int64_t>(
          8 + std::string(R"({"c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})").size()));
  TensorView foreign;
  EXPECT_EQ(store->file_offset(foreign), -1);

  auto ok = store->get("a", DType::kBF16, {2, 3});
  ASSERT_TRUE(ok.has_value()) << ok.status().message();
  auto bad_shape = store->get("a", DType::kBF16, {3, 2});
  ASSERT_FALSE(bad_shape.has_value());
  EXPECT_EQ(bad_shape.status().message(), f1 + ": tensor 'a' is BF16 [2, 3], expected BF16 [3, 2]");
  auto bad_dtype = store->get("c", DType::kBF16, {2});
  ASSERT_FALSE(bad_dtype.has_value());
  EXPECT_NE(bad_dtype.status().message().find("is F32 [2], expected BF16 [2]"), std::string::npos);
  auto missing = store->get("zz", DType::kU8, {1});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.status().message().find("tensor 'zz' not found"), std::string::npos);

  // The store is movable and views stay valid.
  TensorStore moved = std::move(*store);
  EXPECT_EQ(moved.find("a")->data[1], 2);
}

TEST_F(TensorStoreTest, DuplicateTensorAcrossFilesAndMissingFile) {
  auto f1 = write("a.safetensors", image(kTwo, std::string(16, '\0')));
  auto f2 = write("b.safetensors", image(kTwo, std::string(16, '\0')));
  auto r = TensorStore::open({f1, f2});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("tensor 'a' is in both"), std::string::npos);
  auto m = TensorStore::open({(dir_ / "none.safetensors").string()});
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.status().message().find("none.safetensors: cannot open"), std::string::npos);
}

TEST(DType, NamesAndSizes) {
  EXPECT_STREQ(dtype_name(DType::kBF16), "BF16");
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
  EXPECT_EQ(dtype_from_name("BOOL"), DType::kBool);
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_EQ(shape_to_string({4096, 2880}), "[4096, 2880]");
}

}  // namespace
}  // namespace gptoss
