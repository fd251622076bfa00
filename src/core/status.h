// Errors as values. A Status carries a message a user can act on (file, tensor, field, offset);
// Expected<T> is a value or a Status. Nothing in gptoss throws across a layer boundary.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace gptoss {

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.ok_ = false;
    s.message_ = std::move(message);
    return s;
  }
  bool is_ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string& message() const { return message_; }
  // Prefix context ("loading model.safetensors: ...") while an error travels up.
  Status with_context(const std::string& context) const {
    if (ok_) return *this;
    return error(context + ": " + message_);
  }

 private:
  bool ok_ = true;
  std::string message_;
};

template <typename... Args>
Status Error(fmt::format_string<Args...> f, Args&&... args) {
  return Status::error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {}   // NOLINT: must be an error
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const {
    static const Status kOk;
    return has_value() ? kOk : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace gptoss

// Propagate an error Status out of the current function.
#define GPTOSS_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::gptoss::Status _st = (expr);            \
    if (!_st.is_ok()) return _st;             \
  } while (0)

#define GPTOSS_CONCAT_INNER(a, b) a##b
#define GPTOSS_CONCAT(a, b) GPTOSS_CONCAT_INNER(a, b)
// Bind the value of an Expected<T> or return its error.
#define GPTOSS_ASSIGN_OR_RETURN(lhs, expr)                              \
  auto GPTOSS_CONCAT(_exp_, __LINE__) = (expr);                         \
  if (!GPTOSS_CONCAT(_exp_, __LINE__)) return GPTOSS_CONCAT(_exp_, __LINE__).status(); \
  lhs = std::move(GPTOSS_CONCAT(_exp_, __LINE__)).value()
