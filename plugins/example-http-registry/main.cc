// modelzoo-http-registry: serves a directory of models, <root>/<model name>/<version>/<files>,
// with the HTTP registry protocol of docs/http-registry.md, for the remote plugin to pull from.
//
//   modelzoo-http-registry --root /srv/models --listen 0.0.0.0:8080 --bearer-file /etc/modelzoo/token
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "example-http-registry/server.h"

namespace {

namespace fs = std::filesystem;
namespace hr = modelzoo::plugins::http_registry;

int usage_error(const std::string& msg) {
  std::cerr << "modelzoo-http-registry: " << msg << "\n";
  return 2;
}

// Writes the port to `file` atomically (a reader never sees a partial number).
bool write_port_file(const std::string& file, int port) {
  std::string tmp = file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) fs::remove(tmp, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Serves a directory of models over HTTP with the modelzoo HTTP registry protocol "
               "(docs/http-registry.md)."};
  hr::ServerOptions o;
  std::string root, listen = "127.0.0.1:8080", port_file;
  std::string api_key, api_key_header = "X-API-Key", api_key_query, bearer, bearer_file, basic, require_header;
  std::int64_t drop_after = -1, die_after = -1;
  // Given twice, the last --root or --listen counts (a wrapper's defaults can be overridden).
  app.add_option("--root", root, "Directory to serve: <root>/<model name>/<version>/<files>")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--listen", listen, "HOST:PORT to listen on ([V6]:PORT for IPv6; port 0 = any free port)")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--port-file", port_file, "Write the port to FILE once listening");
  auto* key = app.add_option("--api-key", api_key, "Require this API key");
  app.add_option("--api-key-header", api_key_header, "Header carrying the API key")->capture_default_str()->needs(key);
  app.add_option("--api-key-query", api_key_query, "Also accept the API key as the query parameter NAME")->needs(key);
  auto* bearer_opt = app.add_option("--bearer", bearer, "Require 'Authorization: Bearer TOKEN'");
  auto* bearer_file_opt =
      app.add_option("--bearer-file", bearer_file, "Like --bearer, the token read from FILE (re-read when it changes)");
  auto* basic_opt = app.add_option("--basic", basic, "Require HTTP basic authentication as USER:PASSWORD");
  auto* header_opt = app.add_option("--require-header", require_header, "Require the header NAME:VALUE");
  app.add_option("--threads", o.threads, "Worker threads (concurrent connections)")->capture_default_str()->check(
      CLI::Range(1, 1024));
  auto* knobs = "Test knobs (for the remote plugin's tests; not for production)";
  app.add_option("--fail-first", o.fail_first, "Answer the first N requests with --fail-status")->group(knobs);
  app.add_option("--fail-status", o.fail_status, "Status of --fail-first answers: 503 or 429")
      ->capture_default_str()
      ->check(CLI::IsMember({503, 429}))
      ->group(knobs);
  app.add_option("--retry-after", o.retry_after, "Retry-After seconds of every 503/429 (0 allowed)")
      ->capture_default_str()
      ->group(knobs);
  app.add_option("--drop-after-bytes", drop_after,
                 "Close the connection after N bytes of a file body, once per file, then serve normally")
      ->check(CLI::NonNegativeNumber)
      ->group(knobs);
  app.add_option("--die-after-bytes", die_after, "Exit abruptly (status 1) once N file body bytes were sent")
      ->check(CLI::NonNegativeNumber)
      ->group(knobs);
  app.add_option("--throttle", o.throttle, "Send each file body at most BYTES_PER_SEC fast")->group(knobs);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is 0; every usage error is 2
  }

  int auth_kinds = int(!key->empty()) + int(!bearer_opt->empty()) + int(!bearer_file_opt->empty()) +
                   int(!basic_opt->empty()) + int(!header_opt->empty());
  if (auth_kinds > 1)
    return usage_error("give at most one of --api-key, --bearer, --bearer-file, --basic, --require-header");
  auto& a = o.auth;
  if (!key->empty()) {
    if (api_key.empty()) return usage_error("--api-key must not be empty");
    if (api_key_header.empty()) return usage_error("--api-key-header must not be empty");
    a.kind = hr::AuthConfig::Kind::api_key;
    a.api_key = api_key;
    a.api_key_header = api_key_header;
    a.api_key_query = api_key_query;
  } else if (!bearer_opt->empty() || !bearer_file_opt->empty()) {
    if (!bearer_opt->empty() && bearer.empty()) return usage_error("--bearer must not be empty");
    a.kind = hr::AuthConfig::Kind::bearer;
    a.bearer = bearer;
    a.bearer_file = bearer_file;
  } else if (!basic_opt->empty()) {
    auto p = hr::split_pair(basic, false);
    if (!p) return usage_error("--basic takes USER:PASSWORD");
    a.kind = hr::AuthConfig::Kind::basic;
    a.basic_user = p->first;
    a.basic_password = p->second;
  } else if (!header_opt->empty()) {
    auto p = hr::split_pair(require_header, true);
    if (!p || p->second.empty()) return usage_error("--require-header takes NAME:VALUE");
    a.kind = hr::AuthConfig::Kind::header;
    a.header_name = p->first;
    a.header_value = p->second;
  }
  try {
    auto addr = hr::parse_listen(listen);
    o.host = addr.host;
    o.port = addr.port;
  } catch (const std::invalid_argument& e) {
    return usage_error(e.what());
  }
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return usage_error("--root " + root + " is not a directory");
  o.root = root;
  o.drop_after_bytes = drop_after;
  o.die_after_bytes = die_after;

  // SIGTERM and SIGINT stop the server from a thread of their own; every other thread
  // (cpp-httplib's workers included) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<hr::Server> server;
  int port;
  try {
    server = std::make_unique<hr::Server>(o);
    port = server->bind();
  } catch (const std::exception& e) {
    std::cerr << "modelzoo-http-registry: " << e.what() << "\n";
    return 1;
  }
  std::string shown_host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
  std::cerr << "modelzoo-http-registry: serving " << fs::absolute(root, ec).string() << " on http://" << shown_host
            << ":" << port << "/v1/models (auth: " << hr::describe(o.auth) << ")" << std::endl;
  if (o.fail_first || o.drop_after_bytes >= 0 || o.die_after_bytes >= 0 || o.throttle)
    std::cerr << "modelzoo-http-registry: test knobs are on" << std::endl;
  if (!port_file.empty() && !write_port_file(port_file, port)) {
    std::cerr << "modelzoo-http-registry: cannot write the port file " << port_file << "\n";
    return 1;
  }

  std::atomic<bool> finished{false};
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (finished) return;  // woken to leave: the server stopped on its own
    std::cerr << "modelzoo-http-registry: stopping (signal " << sig << ")" << std::endl;
    server->stop();
  });
  bool ok = server->serve();
  finished = true;
  pthread_kill(signals.native_handle(), SIGTERM);  // blocked, so it only wakes sigwait
  signals.join();
  std::cerr << "modelzoo-http-registry: stopped" << std::endl;
  return ok ? 0 : 1;
}
