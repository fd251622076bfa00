#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <fmt/format.h>

namespace gptoss::hub {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

struct Transfer {
  HttpResponse resp;
  CURL* curl = nullptr;
  const DownloadCallbacks* cb = nullptr;
  bool started = false;
  bool to_sink = false;
  bool aborted_by_sink = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->resp.headers.clear();  // a new response (after a redirect or a 100 Continue)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) t->resp.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  if (!t->started) {
    t->started = true;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->resp.status);
    if (t->cb && (t->resp.status == 200 || t->resp.status == 206)) {
      t->to_sink = true;
      if (t->cb->on_start && !t->cb->on_start(t->resp.status, t->resp)) {
        t->aborted_by_sink = true;
        return 0;
      }
    }
  }
  if (t->to_sink) {
    if (!t->cb->sink(data, bytes)) {
      t->aborted_by_sink = true;
      return 0;
    }
    return bytes;
  }
  if (t->resp.body.size() < kMaxErrorBody || !t->cb) t->resp.body.append(data, bytes);
  return bytes;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cb && t->to_sink && t->cb->progress) t->cb->progress(uint64_t(dlnow), uint64_t(dltotal));
  return 0;
}

Status transport_error(CURLcode code, const char* errbuf, const std::string& url) {
  std::string detail = (errbuf && *errbuf) ? errbuf : curl_easy_strerror(code);
  std::string origin = url_origin(url);
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
      return Error(
          "cannot reach {} ({}): you appear to be offline. Check your network or proxy settings; models "
          "already in the cache can be used with HF_HUB_OFFLINE=1",
          origin, detail);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return Error("TLS connection to {} failed ({}); is the ca-certificates package installed?", origin, detail);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return Error("connection to {} dropped ({})", origin, detail);
    default:
      return Error("request to {} failed ({})", url, detail);
  }
}

Expected<HttpResponse> perform(const std::string& url, const HttpOptions& opt, bool head, uint64_t resume_from,
                               const DownloadCallbacks* cb, bool follow) {
  global_init();
  CURL* curl = curl_easy_init();
  if (!curl) return Error("cannot initialise libcurl");
  Transfer t;
  t.curl = curl;
  t.cb = cb;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const auto& h : opt.headers) headers = curl_slist_append(headers, h.c_str());
  // A Range header of our own rather than CURLOPT_RESUME_FROM: curl then leaves a 200 answer (a server
  // that ignores Range) to us, and on_start restarts the file instead of failing.
  std::string range = fmt::format("Range: bytes={}-", resume_from);
  if (resume_from > 0) headers = curl_slist_append(headers, range.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "gptoss/0.1.0");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  // Authorization set through CURLOPT_HTTPHEADER is not sent to another host on redirect (the CDN
  // URLs the hub redirects to are pre-signed), which is what huggingface_hub does too.
  curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, opt.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, opt.low_speed_timeout_s);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  if (cb) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  }
  CURLcode rc = curl_easy_perform(curl);
  if (!t.started || t.resp.status == 0) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.resp.status);
  char* eff = nullptr;
  curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff);
  t.resp.url = eff ? eff : url;
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (t.aborted_by_sink) return Error("download aborted while writing");
  if (rc == CURLE_HTTP_RETURNED_ERROR && t.resp.status >= 400) return t.resp;
  if (rc != CURLE_OK) return transport_error(rc, errbuf, t.resp.url);
  return t.resp;
}

}  // namespace

std::string url_origin(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  auto path = url.find('/', scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path);
}

std::string url_quote_path(const std::string& path) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Expected<HttpResponse> http_get(const std::string& url, const HttpOptions& opt) {
  return perform(url, opt, false, 0, nullptr, opt.follow_redirects);
}

Expected<HttpResponse> http_head_hub(const std::string& url, const HttpOptions& opt) {
  std::string current = url;
  for (int hop = 0; hop < 10; ++hop) {
    GPTOSS_ASSIGN_OR_RETURN(HttpResponse r, perform(current, opt, true, 0, nullptr, false));
    std::string loc = r.header("location");
    if (r.status < 300 || r.status >= 400 || loc.empty()) return r;
    std::string next;
    if (loc.rfind("/", 0) == 0 && loc.rfind("//", 0) != 0) {
      next = url_origin(current) + loc;
    } else if (url_origin(loc) == url_origin(current)) {
      next = loc;
    } else {
      return r;  // off-hub (CDN) redirect: the caller downloads from Location
    }
    current = next;
  }
  return Error("too many redirects from {}", url);
}

Expected<HttpResponse> http_download(const std::string& url, const HttpOptions& opt, uint64_t resume_from,
                                     const DownloadCallbacks& cb) {
  return perform(url, opt, false, resume_from, &cb, true);
}

}  // namespace gptoss::hub
