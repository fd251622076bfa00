// Errors a request can get, in OpenAI's shape: {"error":{"message","type","param","code"}}.
// Inside the server layer request parsing throws ApiError and each route catches it at its edge;
// nothing is thrown out of the layer.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace gptoss::server {

using ojson = nlohmann::ordered_json;

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
  int retry_after_s = 0;  // > 0: sent as a Retry-After header

  // 400: a field is missing, has the wrong type or is out of range.
  static ApiError invalid(std::string param, std::string message, std::string code = "");
  static ApiError not_found(std::string message, std::string param = "", std::string code = "");
  static ApiError unauthorized(std::string message);
  static ApiError overloaded(std::string message, int retry_after_s);
  static ApiError internal(std::string message);

  ojson to_openai_json() const;
  // Ollama's shape: {"error": "message"}.
  ojson to_ollama_json() const;
};

}  // namespace gptoss::server
