#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace gptoss {

const char kO200kPattern[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'"
    "s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:"
    "'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
    "|\\s*[\\r\\n]+"
    "|\\s+(?!\\S)"
    "|\\s+";

namespace {

// tiktoken's regex engine (Rust regex) reads \s as Unicode White_Space. PCRE2's \s with UCP also
// takes U+180E (via \h), so spell the set out.
constexpr const char* kWhiteSpace =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

#include "tokenizer/unicode_extra.inc"

// The o200k pattern for PCRE2: \s spelled out, and each class extended by the characters that
// tiktoken's newer Unicode tables add (PCRE2 10.42 has Unicode 14; tiktoken's regex has 16).
std::string pcre2_pattern() {
  const std::string ws = kWhiteSpace, l = kExtraL, n = kExtraN, up = kExtraUpperish,
                    lo = kExtraLowerish;
  const std::string not_l_n = "[^\\r\\n\\p{L}\\p{N}" + l + n + "]";
  const std::string upper = "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}" + up + "]";
  const std::string lower = "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}" + lo + "]";
  const std::string contraction = "(?i:'s|'t|'re|'ve|'m|'ll|'d)?";
  return not_l_n + "?" + upper + "*" + lower + "+" + contraction +        //
         "|" + not_l_n + "?" + upper + "+" + lower + "*" + contraction +  //
         "|[\\p{N}" + n + "]{1,3}" +                                      //
         "| ?[^" + ws + "\\p{L}\\p{N}" + l + n + "]+[\\r\\n/]*" +         //
         "|[" + ws + "]*[\\r\\n]+" +                                      //
         "|[" + ws + "]+(?![^" + ws + "])" +                              //
         "|[" + ws + "]+";
}

// Per-thread match data and JIT stack (pcre2 code is shared; these are not).
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  MatchState() {
    md = pcre2_match_data_create(4, nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~MatchState() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

struct Pretokenizer::Code {
  pcre2_code* re = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(re); }
};

Pretokenizer::~Pretokenizer() = default;

Expected<std::unique_ptr<Pretokenizer>> Pretokenizer::create() {
  std::unique_ptr<Pretokenizer> pt(new Pretokenizer());
  pt->code_ = std::make_unique<Code>();
  std::string pattern = pcre2_pattern();
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pt->code_->re =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &err_off, nullptr);
  if (pt->code_->re == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return Error("pre-tokenizer regex does not compile at offset {}: {}", err_off,
                 reinterpret_cast<const char*>(msg));
  }
  pt->code_->jit = pcre2_jit_compile(pt->code_->re, PCRE2_JIT_COMPLETE) == 0;
  return pt;
}

bool Pretokenizer::next_match(std::string_view text, size_t offset, size_t* start,
                              size_t* end) const {
  MatchState& st = match_state();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = code_->jit ? pcre2_jit_match(code_->re, subject, text.size(), offset, 0, st.md, st.ctx)
                      : pcre2_match(code_->re, subject, text.size(), offset, PCRE2_NO_UTF_CHECK,
                                    st.md, st.ctx);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    // Pathological input for the JIT stack: the interpreter keeps its frames on the heap.
    rc = pcre2_match(code_->re, subject, text.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     st.md, nullptr);
  }
  if (rc < 0) return false;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  *start = ov[0];
  *end = ov[1];
  if (*end <= *start) return false;  // the pattern never matches empty; guard against a loop
  return true;
}

}  // namespace gptoss
