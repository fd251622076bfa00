#include "server/server.h"

#include <sys/socket.h>

#include <ctime>

#include <fmt/format.h>

#include "server/json_fields.h"
#include "server/server_impl.h"

namespace gptoss::server {

// ---- helpers ----

void send_json(httplib::Response& res, int status, const ojson& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, ojson::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e, bool ollama_shape) {
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  send_json(res, e.status, ollama_shape ? e.to_ollama_json() : e.to_openai_json());
}

std::string sse_data(const ojson& j) {
  return "data: " + j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n\n";
}

std::string sse_event(const std::string& type, const ojson& j) {
  return "event: " + type + "\ndata: " + j.dump(-1, ' ', false, ojson::error_handler_t::replace) +
         "\n\n";
}

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string iso_time_now() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now - secs).count();
  std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09d}Z", buf, nanos);
}

bool Server::Impl::known_model(const std::string& name) const {
  if (name == config.model_id) return true;
  for (const auto& a : config.model_aliases) {
    if (name == a) return true;
  }
  return false;
}

void Server::Impl::check_model(const std::string& name) const {
  if (!known_model(name)) {
    throw ApiError::not_found(fmt::format("The model '{}' does not exist; this server serves '{}'",
                                          name, config.model_id),
                              "model", "model_not_found");
  }
}

void handle_json_route(Server::Impl& s, const std::string& route, bool ollama_shape,
                       const httplib::Request& req, httplib::Response& res,
                       const std::function<void(const ojson&, httplib::Response&)>& fn) {
  s.active_requests.fetch_add(1);
  CounterSlot slot(&s.active_requests);
  try {
    ojson body = parse_body(req.body);
    fn(body, res);
  } catch (const ApiError& e) {
    send_error(res, e, ollama_shape);
  } catch (const ojson::exception& e) {
    send_error(res, ApiError::invalid("", fmt::format("bad request JSON: {}", e.what())),
               ollama_shape);
  } catch (const std::exception& e) {
    send_error(res, ApiError::internal(fmt::format("internal error: {}", e.what())), ollama_shape);
  }
  s.metrics.count_request(route, res.status);
}

// ---- simple routes ----

static ojson model_object(const Server::Impl& s) {
  return ojson{{"id", s.config.model_id},
               {"object", "model"},
               {"created", std::chrono::duration_cast<std::chrono::seconds>(
                               s.started.time_since_epoch()).count()},
               {"owned_by", "gptoss"},
               {"max_model_len", s.engine->context_length()}};
}

static ojson ollama_details(const Server::Impl& s) {
  ojson d = {{"parent_model", ""},
             {"format", "safetensors"},
             {"family", "gptoss"},
             {"families", ojson::array({"gptoss"})},
             {"parameter_size", ""},
             {"quantization_level", "MXFP4"}};
  if (auto it = s.config.model_info.find("parameter_size"); it != s.config.model_info.end()) {
    d["parameter_size"] = *it;
  }
  return d;
}

static void register_basic(Server::Impl& s) {
  s.http.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    auto st = s.engine->stats();
    send_json(res, 200, ojson{{"status", "ok"}, {"model", s.config.model_id},
                              {"running", st.running}, {"queued", st.queued}});
    s.metrics.count_request("/health", res.status);
  });
  s.http.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.metrics.render(s.engine->stats(), s.active_requests.load()),
                    "text/plain; version=0.0.4");
    s.metrics.count_request("/metrics", 200);
  });
  s.http.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, ojson{{"object", "list"}, {"data", ojson::array({model_object(s)})}});
    s.metrics.count_request("/v1/models", res.status);
  });
  s.http.Get(R"(/v1/models/(.+))", [&s](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1];
    if (s.known_model(name)) {
      ojson m = model_object(s);
      m["id"] = name;
      send_json(res, 200, m);
    } else {
      send_error(res, ApiError::not_found(fmt::format("The model '{}' does not exist", name),
                                          "model", "model_not_found"), false);
    }
    s.metrics.count_request("/v1/models/{id}", res.status);
  });
  s.http.Get("/api/version", [&s](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, ojson{{"version", "0.1.0"}});
    s.metrics.count_request("/api/version", res.status);
  });
  s.http.Get("/api/tags", [&s](const httplib::Request&, httplib::Response& res) {
    ojson m = {{"name", s.config.model_id},
               {"model", s.config.model_id},
               {"modified_at", iso_time_now()},
               {"size", s.config.model_size_bytes},
               {"digest", ""},
               {"details", ollama_details(s)}};
    send_json(res, 200, ojson{{"models", ojson::array({m})}});
    s.metrics.count_request("/api/tags", res.status);
  });
  s.http.Post("/api/show", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json_route(s, "/api/show", true, req, res, [&s](const ojson& body, httplib::Response& r) {
      std::string name = opt_string(body, "model", "").value_or("");
      if (name.empty()) name = opt_string(body, "name", "").value_or("");
      if (name.empty()) throw ApiError::invalid("model", "'model' is required");
      if (!s.known_model(name)) {
        throw ApiError::not_found(fmt::format("model '{}' not found", name));
      }
      ojson info = s.config.model_info;
      info["general.architecture"] = "gptoss";
      info["gptoss.context_length"] = s.engine->context_length();
      send_json(r, 200, ojson{{"modelfile", ""},
                              {"parameters", ""},
                              {"template", "harmony"},
                              {"details", ollama_details(s)},
                              {"model_info", info},
                              {"capabilities", ojson::array({"completion", "tools", "thinking"})},
                              {"modified_at", iso_time_now()}});
    });
  });
}

// ---- Server ----

Server::Server(ServerConfig config, engine::Engine& engine,
               std::shared_ptr<const Tokenizer> tokenizer)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.config = std::move(config);
  s.engine = &engine;
  s.tokenizer = std::move(tokenizer);
  const int threads = s.config.http_threads > 0 ? s.config.http_threads
                                                : s.config.max_active_requests + 8;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_tcp_nodelay(true);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a second server bind
  // the same port and silently take half of the connections.
  s.http.set_socket_options([&s](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
    s.listen_socket.store(static_cast<int>(sock));
  });
  s.http.set_keep_alive_max_count(1000);
  // Idle keep-alive connections hold a pool thread, and stop() waits for them: keep it short.
  s.http.set_keep_alive_timeout(5);
  s.http.set_read_timeout(60);
  s.http.set_write_timeout(60);
  s.http.set_payload_max_length(s.config.max_body_bytes);

  s.http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (s.config.api_key.empty() || req.path == "/health") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string want = "Bearer " + s.config.api_key;
    const std::string got = req.get_header_value("Authorization");
    // Compare in time independent of where the strings differ.
    unsigned diff = got.size() == want.size() ? 0u : 1u;
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
      diff |= static_cast<unsigned char>(got[i] ^ want[i]);
    }
    if (diff == 0) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res,
               ApiError::unauthorized(got.empty()
                                          ? "missing API key: send 'Authorization: Bearer KEY'"
                                          : "incorrect API key"),
               req.path.rfind("/api/", 0) == 0);
    s.metrics.count_request("unauthorized", 401);
    return httplib::Server::HandlerResponse::Handled;
  });
  s.http.set_error_handler(httplib::Server::HandlerWithResponse(
      [&s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    bool ollama = req.path.rfind("/api/", 0) == 0;
    ApiError e;
    e.status = res.status;
    if (res.status == 404) {
      e.message = fmt::format("no route for {} {}", req.method, req.path);
      e.code = "not_found";
    } else if (res.status == 405) {
      e.message = fmt::format("method {} is not allowed on {}", req.method, req.path);
    } else if (res.status == 413) {
      e.message = fmt::format("request body is larger than the limit of {} bytes",
                              s.config.max_body_bytes);
      e.code = "request_too_large";
    } else {
      e.message = fmt::format("HTTP error {}", res.status);
      if (res.status >= 500) e.type = "server_error";
    }
    send_error(res, e, ollama);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.http.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                                  std::exception_ptr) {
    send_error(res, ApiError::internal("internal server error"), false);
  });

  register_basic(s);
  register_openai_chat(s);
  register_openai_responses(s);
  register_openai_completions(s);
  register_ollama(s);
}

Server::~Server() { stop(); }

// httplib 0.11 (Debian 12's, a shared library) listens with a backlog of 5. When a burst of
// clients connects while the accept thread is not scheduled (a loaded machine, a sanitizer build),
// the connections beyond 5 wait half-open; the kernel expires them after a few SYN-ACK timeouts and
// answers the client's request with a reset (seen in CI: ConnectionResetError under a 48-client
// burst). Linux lets listen() on a listening socket change its backlog: raise it to the system's
// limit (net.core.somaxconn caps it).
static void raise_listen_backlog(int sock) {
  int listening = 0;
  socklen_t len = sizeof(listening);
  if (sock < 0 || getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
    return;
  }
  ::listen(sock, 4096);
}

Status Server::bind() {
  Impl& s = *impl_;
  if (s.config.port == 0) {
    int p = s.http.bind_to_any_port(s.config.host);
    if (p <= 0) return Error("cannot listen on {}: bind failed", s.config.host);
    s.config.port = p;
    raise_listen_backlog(s.listen_socket.load());
    return Status::ok();
  }
  if (!s.http.bind_to_port(s.config.host, s.config.port)) {
    return Error("cannot listen on {}:{} (address in use, or not a local address?)", s.config.host,
                 s.config.port);
  }
  raise_listen_backlog(s.listen_socket.load());
  return Status::ok();
}

int Server::port() const { return impl_->config.port; }

Status Server::run() {
  if (!impl_->http.listen_after_bind()) return Error("the HTTP server stopped with an error");
  return Status::ok();
}

void Server::stop() {
  if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace gptoss::server

namespace gptoss::server {

void stream_job(httplib::Response& res, const std::string& content_type, std::shared_ptr<Job> job,
                std::string prologue,
                std::function<std::string(const std::vector<OutputEvent>&)> on_events,
                std::function<std::string()> on_done) {
  auto started = std::make_shared<bool>(false);
  auto idle_polls = std::make_shared<int>(0);
  // While the model writes nothing the client can see (e.g. a long header), a heartbeat every
  // 0.5 s is the only way to notice a client that went away: an SSE comment, or a space before
  // the next NDJSON line (JSON allows leading whitespace).
  const std::string heartbeat = content_type == "text/event-stream" ? ": keep-alive\n\n" : " ";
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      content_type,
      [job, prologue, started, idle_polls, heartbeat, on_events, on_done](size_t,
                                                                          httplib::DataSink& sink) {
        std::string out;
        if (!*started) {
          *started = true;
          out = prologue;
        }
        std::vector<OutputEvent> events;
        job->step(&events, std::chrono::milliseconds(100));
        out += on_events(events);
        if (job->done()) out += on_done();
        if (out.empty() && ++*idle_polls >= 5) out = heartbeat;
        if (!out.empty()) {
          *idle_polls = 0;
          if (!sink.write(out.data(), out.size())) {
            job->abandon();
            return false;
          }
        }
        if (job->done()) sink.done();
        return true;
      },
      [job](bool success) {
        if (!success) job->abandon();
      });
}

void reply_when_done(httplib::Response& res, std::shared_ptr<Job> job, bool ollama_shape,
                     std::function<ojson(const std::vector<OutputEvent>&)> build) {
  auto events = std::make_shared<std::vector<OutputEvent>>();
  auto polls = std::make_shared<int>(0);
  res.status = 200;
  res.set_chunked_content_provider(
      "application/json",
      [job, events, polls, build, ollama_shape](size_t, httplib::DataSink& sink) {
        job->step(events.get(), std::chrono::milliseconds(100));
        if (!job->done()) {
          // A space every 0.5 s (JSON allows leading whitespace): the only way to notice a
          // client that went away, since is_writable() does not see a closed peer.
          if (++*polls % 5 == 0 && !sink.write(" ", 1)) {
            job->abandon();
            return false;
          }
          return true;
        }
        ojson body;
        if (job->failed()) {
          ApiError e = ApiError::internal("generation failed: " + job->error());
          body = ollama_shape ? e.to_ollama_json() : e.to_openai_json();
        } else {
          try {
            body = build(*events);
          } catch (const ApiError& e) {
            body = ollama_shape ? e.to_ollama_json() : e.to_openai_json();
          }
        }
        std::string out = body.dump(-1, ' ', false, ojson::error_handler_t::replace);
        if (!sink.write(out.data(), out.size())) return false;
        sink.done();
        return true;
      },
      [job](bool success) {
        if (!success) job->abandon();
      });
}

RenderedPrompt render_or_throw(Server::Impl& s, const ChatRequest& req) {
  auto p = render_chat_prompt(*s.tokenizer, req, s.prompt_options());
  if (!p) throw ApiError::invalid("messages", fmt::format("cannot render the conversation: {}",
                                                          p.status().message()));
  return std::move(*p);
}

engine::GenerationRequest generation_request(const ChatRequest& req, const RenderedPrompt& p) {
  engine::GenerationRequest g;
  g.prompt = p.tokens;
  g.prompt.insert(g.prompt.end(), p.forced.begin(), p.forced.end());
  g.sampling = req.sampling;
  g.max_tokens = req.max_tokens;
  g.stop_tokens = harmony_stop_tokens();
  return g;
}

}  // namespace gptoss::server
