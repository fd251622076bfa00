#include "server/api_error.h"

namespace gptoss::server {

namespace {

// An error of type invalid_request_error with no Retry-After; the factories below change the rest.
ApiError make_error(int status, std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

}  // namespace

ApiError ApiError::invalid(std::string param, std::string message, std::string code) {
  return make_error(400, std::move(message), std::move(param), std::move(code));
}

ApiError ApiError::not_found(std::string message, std::string param, std::string code) {
  return make_error(404, std::move(message), std::move(param), std::move(code));
}

ApiError ApiError::unauthorized(std::string message) {
  return make_error(401, std::move(message), "", "invalid_api_key");
}

ApiError ApiError::overloaded(std::string message, int retry_after_s) {
  ApiError e = make_error(429, std::move(message), "", "rate_limit_exceeded");
  e.type = "rate_limit_error";
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError ApiError::internal(std::string message) {
  ApiError e = make_error(500, std::move(message), "", "");
  e.type = "server_error";
  return e;
}

ojson ApiError::to_openai_json() const {
  ojson err = ojson::object();
  err["message"] = message;
  err["type"] = type;
  err["param"] = param.empty() ? ojson(nullptr) : ojson(param);
  err["code"] = code.empty() ? ojson(nullptr) : ojson(code);
  return ojson{{"error", err}};
}

ojson ApiError::to_ollama_json() const { return ojson{{"error", message}}; }

}  // namespace gptoss::server
