// A thin libcurl client for the hub: JSON GETs, HEADs that stop at the first off-hub redirect, and
// streaming downloads with resume. Transport failures become messages a user can act on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace gptoss::hub {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // of the last response, names lower-cased
  std::string body;
  std::string url;  // the URL that produced this response (after redirects)

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpOptions {
  std::vector<std::string> headers;  // "Name: value"
  bool follow_redirects = true;
  long connect_timeout_s = 10;
  long low_speed_timeout_s = 60;  // abort when under 1 byte/s for this long
};

// Any status is returned as a value; only transport failures (DNS, connect, TLS, timeouts) are errors.
Expected<HttpResponse> http_get(const std::string& url, const HttpOptions& opt);

// HEAD that follows redirects only while they stay on the same host (relative Location or same
// scheme://host), like huggingface_hub's metadata call; the response of an off-host redirect is
// returned with its Location header.
Expected<HttpResponse> http_head_hub(const std::string& url, const HttpOptions& opt);

// Streams a body into `sink` (called per chunk; return false to abort with a write error). When
// resume_from > 0 a Range is sent; on_start receives the status before the first byte (206 means
// resumed, 200 means the server restarted from zero). Progress receives bytes of this transfer.
struct DownloadCallbacks {
  std::function<bool(long status, const HttpResponse& head)> on_start;
  std::function<bool(const char* data, size_t n)> sink;
  std::function<void(uint64_t now, uint64_t total)> progress;
};
Expected<HttpResponse> http_download(const std::string& url, const HttpOptions& opt, uint64_t resume_from,
                                     const DownloadCallbacks& cb);

// Splits scheme://host[:port] off a URL ("" when it has none).
std::string url_origin(const std::string& url);
// Percent-encodes a repo path, keeping '/' (like urllib.parse.quote).
std::string url_quote_path(const std::string& path);

}  // namespace gptoss::hub
