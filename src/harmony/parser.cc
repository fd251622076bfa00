#include "harmony/parser.h"

#include <cstring>

#include <fmt/ranges.h>

#include "harmony/render.h"
#include "tokenizer/utf8.h"

namespace gptoss::harmony {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kChannelMarker = "<|channel|>";
constexpr std::string_view kConstrainMarker = "<|constrain|>";

bool is_terminator(uint32_t t) { return t == tok::kEnd || t == tok::kReturn || t == tok::kCall; }

// Moves the decodable prefix of `carry` out as valid UTF-8 (invalid bytes -> U+FFFD); an
// unfinished character stays in `carry` unless `flush`, when it becomes U+FFFD.
std::string take_utf8(std::string& carry, bool flush) {
  std::string out;
  carry.erase(0, utf8::decode_replace(carry, flush, &out));
  return out;
}

bool is_unicode_space(std::string_view s, size_t i, size_t* len) {
  const unsigned char b = s[i];
  if (b == ' ' || (b >= 0x09 && b <= 0x0D)) {
    *len = 1;
    return true;
  }
  if (b < 0x80) return false;
  const size_t n = utf8::sequence_length(s, i);
  if (n <= 1) return false;
  uint32_t cp = 0;
  if (n == 2) cp = ((b & 0x1F) << 6) | (s[i + 1] & 0x3F);
  if (n == 3) cp = ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  if (n == 4) return false;
  *len = n;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Rust str::trim (Unicode White_Space).
std::string trim(std::string_view s) {
  size_t b = 0, len = 0;
  while (b < s.size() && is_unicode_space(s, b, &len)) b += len;
  size_t e = b;  // one past the last non-space character
  for (size_t i = b; i < s.size();) {
    if (is_unicode_space(s, i, &len)) {
      i += len;
    } else {
      const size_t n = utf8::sequence_length(s, i);
      i += n > 0 ? n : 1;
      e = i;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split_ascii_whitespace(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      if (!cur.empty()) parts.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  return parts;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Removes `<|channel|>VALUE` at `at`; VALUE runs to whitespace or '<'. Returns VALUE.
std::string cut_channel(std::string& h, size_t at) {
  size_t v = at + kChannelMarker.size(), e = v, len = 0;
  while (e < h.size() && h[e] != '<' && !is_unicode_space(h, e, &len)) ++e;
  std::string value = h.substr(v, e - v);
  h.erase(at, e - at);
  return value;
}

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kNone:
      return "none";
    case StopReason::kReturn:
      return "return";
    case StopReason::kCall:
      return "call";
    case StopReason::kEndOfStream:
      return "eos";
  }
  return "none";
}

Parser::Parser(const Tokenizer& tokenizer, ParserOptions options)
    : tok_(tokenizer),
      state_(options.role ? State::kHeader : State::kExpectStart),
      next_role_(options.role) {}

std::string Parser::token_name(uint32_t token) const {
  if (tok_.is_special(token)) return std::string(tok_.token_bytes(token));
  return std::to_string(token);
}

void Parser::problem(std::vector<ParseEvent>& out, const std::string& what) {
  std::string msg = fmt::format("token {}: {}", index_ == 0 ? 0 : index_ - 1, what);
  problems_.push_back(msg);
  ParseEvent e;
  e.kind = ParseEvent::Kind::kProblem;
  e.text = std::move(msg);
  out.push_back(std::move(e));
}

std::vector<ParseEvent> Parser::push(uint32_t token) {
  std::vector<ParseEvent> out;
  push(token, out);
  return out;
}

std::vector<ParseEvent> Parser::finish() {
  std::vector<ParseEvent> out;
  finish(out);
  return out;
}

void Parser::begin_header(std::optional<Role> role, std::vector<uint32_t> tokens) {
  state_ = State::kHeader;
  next_role_ = role;
  header_tokens_ = std::move(tokens);
}

void Parser::begin_content(const MessageHeader& h, std::vector<ParseEvent>& out) {
  state_ = State::kContent;
  next_role_.reset();
  header_ = h;
  content_.clear();
  carry_.clear();
  ParseEvent e;
  e.kind = ParseEvent::Kind::kMessageStart;
  e.header = h;
  out.push_back(std::move(e));
}

void Parser::content_token(uint32_t token, std::vector<ParseEvent>& out) {
  if (!tok_.is_valid(token)) {
    problem(out, fmt::format("id {} is not a token; written as U+FFFD", token));
    carry_ += kReplacement;
  } else {
    if (tok_.is_special(token))
      problem(out, fmt::format("special token {} inside content, kept as text", token_name(token)));
    carry_ += tok_.token_bytes(token);
  }
  std::string delta = take_utf8(carry_, false);
  if (delta.empty()) return;
  content_ += delta;
  ParseEvent e;
  e.kind = ParseEvent::Kind::kContentDelta;
  e.text = std::move(delta);
  out.push_back(std::move(e));
}

void Parser::end_message(uint32_t terminator, std::vector<ParseEvent>& out) {
  std::string rest = take_utf8(carry_, true);
  if (!rest.empty()) {
    content_ += rest;
    ParseEvent d;
    d.kind = ParseEvent::Kind::kContentDelta;
    d.text = std::move(rest);
    out.push_back(std::move(d));
  }
  Message m;
  m.role = header_.role;
  m.name = header_.name;
  m.recipient = header_.recipient;
  m.channel = header_.channel;
  m.content_type = header_.content_type;
  m.content.push_back(Content::of_text(content_));
  messages_.push_back(std::move(m));
  ParseEvent e;
  e.kind = ParseEvent::Kind::kMessageEnd;
  e.header = header_;
  e.terminator = terminator;
  out.push_back(std::move(e));
  state_ = State::kExpectStart;
  content_.clear();
}

void Parser::on_stop_token(uint32_t token, std::vector<ParseEvent>& out) {
  if (token != tok::kReturn && token != tok::kCall) return;
  StopReason r = token == tok::kReturn ? StopReason::kReturn : StopReason::kCall;
  if (stop_ == StopReason::kNone) stop_ = r;
  ParseEvent e;
  e.kind = ParseEvent::Kind::kStop;
  e.stop = r;
  out.push_back(std::move(e));
}

void Parser::push(uint32_t token, std::vector<ParseEvent>& out) {
  ++index_;
  switch (state_) {
    case State::kExpectStart:
      if (token == tok::kStart) {
        begin_header(std::nullopt, {});
      } else if (token == tok::kChannel) {
        problem(out, "<|channel|> without <|start|>; read as the header of an assistant message");
        begin_header(Role::kAssistant, {token});
      } else if (is_terminator(token)) {
        problem(out, fmt::format("{} outside a message", token_name(token)));
        on_stop_token(token, out);
      } else {
        problem(out, "text outside a message; kept as an assistant message without a channel");
        begin_content(MessageHeader{}, out);
        content_token(token, out);
      }
      break;
    case State::kHeader:
      if (token == tok::kMessage) {
        header_complete(out);
      } else if (is_terminator(token)) {
        recover_header(token, out);
        on_stop_token(token, out);
      } else if (token == tok::kStart) {
        if (header_tokens_.empty()) problem(out, "<|start|> in place of a message header");
        recover_header(0, out);
        begin_header(std::nullopt, {});
      } else {
        header_tokens_.push_back(token);
      }
      break;
    case State::kContent:
      if (is_terminator(token)) {
        end_message(token, out);
        on_stop_token(token, out);
      } else if (token == tok::kStart) {
        problem(out, "<|start|> inside a message: the message ends here without <|end|>");
        end_message(0, out);
        begin_header(std::nullopt, {});
      } else if (token == tok::kChannel) {
        problem(out, "<|channel|> inside a message: read as the header of a new assistant message");
        end_message(0, out);
        begin_header(Role::kAssistant, {token});
      } else {
        content_token(token, out);
      }
      break;
  }
}

void Parser::finish(std::vector<ParseEvent>& out) {
  if (state_ == State::kContent) {
    end_message(0, out);
  } else if (state_ == State::kHeader) {
    // Nothing pushed at all is an empty generation, not a broken one.
    if (index_ > 0) problem(out, "generation ended inside a message header");
    if (!header_tokens_.empty()) recover_header(0, out);
    state_ = State::kExpectStart;
  }
  if (stop_ == StopReason::kNone) {
    stop_ = StopReason::kEndOfStream;
    ParseEvent e;
    e.kind = ParseEvent::Kind::kStop;
    e.stop = stop_;
    out.push_back(std::move(e));
  }
}

std::string Parser::decode_header(std::vector<ParseEvent>& out) {
  std::string bytes;
  for (uint32_t t : header_tokens_) {
    if (!tok_.is_valid(t)) {
      problem(out, fmt::format("id {} in a header is not a token", t));
      continue;
    }
    bytes += tok_.token_bytes(t);
  }
  if (utf8::valid_prefix(bytes) != bytes.size())
    problem(out, "message header is not valid UTF-8; invalid bytes read as U+FFFD");
  std::string text = take_utf8(bytes, true);
  return text;
}

void Parser::header_complete(std::vector<ParseEvent>& out) {
  std::string h = decode_header(out);
  const std::string original = h;
  MessageHeader header;
  // 1. The channel: the first <|channel|>, up to whitespace or '<'.
  if (size_t at = h.find(kChannelMarker); at != std::string::npos) {
    std::string value = cut_channel(h, at);
    if (value.empty())
      problem(out, fmt::format("header '{}': <|channel|> without a channel name", original));
    else
      header.channel = std::move(value);
    while ((at = h.find(kChannelMarker)) != std::string::npos) {
      std::string again = cut_channel(h, at);
      problem(out, fmt::format("header '{}': repeated <|channel|>{} removed", original, again));
    }
  }
  // 2. Words; <|constrain|> always starts a word.
  h = trim(h);
  if (h.find(kConstrainMarker) != std::string::npos) {
    std::string spaced;
    for (size_t i = 0; i < h.size();) {
      if (h.compare(i, kConstrainMarker.size(), kConstrainMarker) == 0) {
        spaced += ' ';
        spaced += kConstrainMarker;
        i += kConstrainMarker.size();
      } else {
        spaced += h[i++];
      }
    }
    h = trim(spaced);
  }
  std::vector<std::string> parts = split_ascii_whitespace(h);
  size_t p = 0;  // parts[p..] are still unread
  // 3. The role: given for the first message, else the first word.
  if (next_role_) {
    header.role = *next_role_;
  } else if (parts.empty()) {
    problem(out, fmt::format("header '{}' names no role; read as assistant", original));
    header.role = Role::kAssistant;
  } else if (auto r = role_from_name(parts[0])) {
    header.role = *r;
    if (*r == Role::kTool) header.name = parts[0];
  } else {
    // "browser.search to=assistant": a tool author.
    if (parts.size() == 1 && !starts_with(parts[0], "to="))
      problem(out, fmt::format("header '{}': unknown role '{}'; read as a tool named so", original,
                               parts[0]));
    header.role = Role::kTool;
    header.name = parts[0];
    p = 1;
  }
  if (p < parts.size() && parts[p] == role_name(header.role)) ++p;
  // 4. From the end: [recipient] [content type].
  size_t end = parts.size();
  if (p < end) {
    const size_t n = end - p;
    std::string last = parts[--end];
    if (starts_with(last, "to=")) {
      header.recipient = last.substr(3);
    } else if (n == 1 && starts_with(last, kConstrainMarker)) {
      header.content_type = last;  // `<|channel|>final <|constrain|>json`: no recipient
    } else if (n == 1) {
      header.recipient = last;
    } else {
      header.content_type = last;
      std::string r = parts[--end];
      header.recipient = starts_with(r, "to=") ? r.substr(3) : r;
    }
  }
  if (p < end)
    problem(out,
            fmt::format("header '{}': unexpected words '{}' left out", original,
                        fmt::join(parts.begin() + p, parts.begin() + end, " ")));
  if (header.recipient) {
    if (size_t cut = header.recipient->find("<|"); cut != std::string::npos) {
      problem(out, fmt::format("header '{}': recipient cut at '<|'", original));
      header.recipient->resize(cut);
    }
  }
  header_tokens_.clear();
  begin_content(header, out);
}

void Parser::recover_header(uint32_t terminator, std::vector<ParseEvent>& out) {
  if (header_tokens_.empty()) {
    if (terminator)
      problem(out, fmt::format("{} in place of a message header", token_name(terminator)));
    state_ = State::kExpectStart;
    next_role_.reset();
    return;
  }
  std::string h = decode_header(out);
  problem(out, fmt::format("message without <|message|>: header text '{}' kept as its content", h));
  MessageHeader header;
  if (size_t at = h.find(kChannelMarker); at != std::string::npos) {
    std::string value = cut_channel(h, at);
    // Without <|message|> the content may run straight on from the channel name
    // ("finalHello"): keep a known channel name and give the rest back to the text.
    for (const char* known : {"analysis", "commentary", "final"}) {
      if (starts_with(value, known) && value.size() > std::strlen(known)) {
        h.insert(at, value.substr(std::strlen(known)));
        value.resize(std::strlen(known));
        break;
      }
    }
    if (!value.empty()) header.channel = std::move(value);
  }
  std::string text = trim(h);
  if (next_role_) {
    header.role = *next_role_;
  } else {
    size_t sp = 0;
    while (sp < text.size() && text[sp] != ' ' && text[sp] != '\n' && text[sp] != '\t') ++sp;
    if (auto r = role_from_name(text.substr(0, sp))) {
      header.role = *r;
      text = trim(text.substr(sp));
    }
  }
  if (!text.empty() && starts_with(text, role_name(header.role)) &&
      (text.size() == role_name(header.role).size() || text[role_name(header.role).size()] == ' '))
    text = trim(text.substr(role_name(header.role).size()));
  header_tokens_.clear();
  if (text.empty()) {  // only header words: nothing to keep as content
    state_ = State::kExpectStart;
    next_role_.reset();
    return;
  }
  begin_content(header, out);
  {
    content_ = text;
    ParseEvent d;
    d.kind = ParseEvent::Kind::kContentDelta;
    d.text = text;
    out.push_back(std::move(d));
  }
  end_message(terminator, out);
}

MessageKind classify(const MessageHeader& h) {
  if (h.role == Role::kTool) return MessageKind::kToolResult;
  if (h.role != Role::kAssistant) return MessageKind::kOther;
  if (h.recipient && *h.recipient != "all" && *h.recipient != "user") {
    if (starts_with(*h.recipient, "functions.")) return MessageKind::kFunctionCall;
    return MessageKind::kBuiltinCall;
  }
  if (h.channel && *h.channel == "analysis") return MessageKind::kReasoning;
  if (h.channel && *h.channel == "commentary") return MessageKind::kPreamble;
  return MessageKind::kFinal;
}

const char* message_kind_name(MessageKind kind) {
  switch (kind) {
    case MessageKind::kFunctionCall:
      return "function_call";
    case MessageKind::kBuiltinCall:
      return "builtin_call";
    case MessageKind::kReasoning:
      return "reasoning";
    case MessageKind::kPreamble:
      return "preamble";
    case MessageKind::kFinal:
      return "final";
    case MessageKind::kToolResult:
      return "tool_result";
    case MessageKind::kOther:
      return "other";
  }
  return "other";
}

ParseResult parse_completion(const Tokenizer& tokenizer, const std::vector<uint32_t>& tokens,
                             std::optional<Role> role) {
  Parser p(tokenizer, ParserOptions{role});
  std::vector<ParseEvent> scratch;
  for (uint32_t t : tokens) {
    scratch.clear();
    p.push(t, scratch);
  }
  scratch.clear();
  p.finish(scratch);
  return ParseResult{p.messages(), p.problems(), p.stop_reason()};
}

}  // namespace gptoss::harmony
