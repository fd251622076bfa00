#include "server/api_error.h"

namespace gptoss::server {

ApiError ApiError::invalid(std::string param, std::string message, std::string code) {
  ApiError e;
  e.status = 400;
  e.param = std::move(param);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

ApiError ApiError::not_found(std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = 404;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

ApiError ApiError::unauthorized(std::string message) {
  ApiError e;
  e.status = 401;
  e.message = std::move(message);
  e.code = "invalid_api_key";
  return e;
}

ApiError ApiError::overloaded(std::string message, int retry_after_s) {
  ApiError e;
  e.status = 429;
  e.type = "rate_limit_error";
  e.code = "rate_limit_exceeded";
  e.message = std::move(message);
  e.retry_after_s = retry_after_s;
  return e;
}

ApiError ApiError::internal(std::string message) {
  ApiError e;
  e.status = 500;
  e.type = "server_error";
  e.message = std::move(message);
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
