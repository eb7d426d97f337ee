// cubectl: look at the local cubelet through its root-only debug socket.
//   cubectl [--socket PATH] pods [-o json|table]
//   cubectl [--socket PATH] logs [-f] [--tail N] [--timestamps] [-p] NS/POD [CONTAINER]
//   cubectl [--socket PATH] exec [-i] NS/POD [-c CONTAINER] -- COMMAND [ARGS...]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/cubectl_exec.h"
#include "agent/cubectl_table.h"
#include "base/result.h"
#include "base/strings.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Socket = net::local::stream_protocol::socket;

constexpr const char* kDefaultSocket = "/run/cubelet/cubelet.sock";

base::Result<> Connect(Socket& sock, const std::string& path) {
  boost::system::error_code ec;
  sock.connect(net::local::stream_protocol::endpoint(path), ec);
  if (ec) {
    std::string hint = "is cubelet running?";
    if (ec == boost::system::errc::permission_denied) hint = "the socket is root-only; " + hint;
    return base::Fail("cannot connect to cubelet at " + path + ": " + ec.message() + "; " + hint,
                      ec.value());
  }
  return {};
}

base::Result<> SendGet(Socket& sock, const std::string& target) {
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "cubelet");
  req.set(http::field::user_agent, "cubectl");
  req.keep_alive(false);
  boost::system::error_code ec;
  http::write(sock, req, ec);
  if (ec) return base::Fail("send request " + target + " to cubelet: " + ec.message());
  return {};
}

// GET with the whole body in memory; non-2xx becomes an error carrying the body.
base::Result<std::string> Get(const std::string& socket_path, const std::string& target) {
  net::io_context ioc;
  Socket sock(ioc);
  CUBELET_TRY(Connect(sock, socket_path));
  CUBELET_TRY(SendGet(sock, target));
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256 << 20);
  boost::system::error_code ec;
  http::read(sock, buf, parser, ec);
  if (ec) return base::Fail("read response to " + target + " from cubelet: " + ec.message());
  auto& res = parser.get();
  if (res.result_int() / 100 != 2) {
    return base::Fail("cubelet answered " + std::to_string(res.result_int()) + ": " + res.body());
  }
  return res.body();
}

// GET that copies the body to stdout as it arrives (for logs -f).
base::Result<> Stream(const std::string& socket_path, const std::string& target) {
  net::io_context ioc;
  Socket sock(ioc);
  CUBELET_TRY(Connect(sock, socket_path));
  CUBELET_TRY(SendGet(sock, target));
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  // Not boost::none: Boost 1.74 compares "len > none" as true and rejects every body.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  boost::system::error_code ec;
  http::read_header(sock, buf, parser, ec);
  if (ec) return base::Fail("read response to " + target + " from cubelet: " + ec.message());
  int status = parser.get().result_int();
  std::string error_body;
  char chunk[64 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    http::read(sock, buf, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return base::Fail("read logs from cubelet: " + ec.message());
    size_t n = sizeof chunk - parser.get().body().size;
    if (status / 100 != 2) {
      error_body.append(chunk, n);
    } else if (n > 0) {
      fwrite(chunk, 1, n, stdout);
      fflush(stdout);
    }
  }
  if (status / 100 != 2) {
    return base::Fail("cubelet answered " + std::to_string(status) + ": " + error_body);
  }
  return {};
}

int Fail(const base::Error& e) {
  std::cerr << "error: " << e.message << "\n";
  return 1;
}

int RunPods(const std::string& socket, const std::string& output) {
  auto body = Get(socket, "/debug/pods");
  if (!body) return Fail(body.error());
  if (output == "json") {
    auto doc = nlohmann::json::parse(*body, nullptr, false);
    std::cout << (doc.is_discarded() ? *body : doc.dump(2)) << "\n";
    return 0;
  }
  auto table = agent::cubectl::RenderPodTable(*body, std::chrono::system_clock::now());
  if (!table) return Fail(table.error());
  std::cout << *table;
  return 0;
}

// NAMESPACE/NAME -> (ns, name).
base::Result<std::pair<std::string, std::string>> SplitPodRef(const std::string& pod_ref) {
  size_t slash = pod_ref.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == pod_ref.size()) {
    return base::Fail("pod must be given as NAMESPACE/NAME, got \"" + pod_ref + "\"", EINVAL);
  }
  return std::make_pair(pod_ref.substr(0, slash), pod_ref.substr(slash + 1));
}

// As kubectl: the only container of the pod, or an error that lists them.
base::Result<std::string> DefaultContainer(const std::string& socket, const std::string& ns,
                                           const std::string& name) {
  auto body = Get(socket, "/debug/pods");
  if (!body) return tl::unexpected(body.error());
  auto doc = nlohmann::json::parse(*body, nullptr, false);
  std::vector<std::string> names;
  bool found = false;
  if (doc.is_object() && doc.contains("pods") && doc["pods"].is_array()) {
    for (const auto& p : doc["pods"]) {
      if (p.value("namespace", "") != ns || p.value("name", "") != name) continue;
      found = true;
      if (p.contains("containers") && p["containers"].is_array()) {
        for (const auto& c : p["containers"]) names.push_back(c.value("name", ""));
      }
    }
  }
  std::string ref = ns + "/" + name;
  if (!found) return base::Fail("pod \"" + ref + "\" not found on this node", ENOENT);
  if (names.size() != 1) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
    return base::Fail("pod \"" + ref + "\" has " + std::to_string(names.size()) +
                          " containers [" + list + "]: name one",
                      EINVAL);
  }
  return names[0];
}

int RunLogs(const std::string& socket, const std::string& pod_ref, std::string container,
            bool follow, int64_t tail, bool timestamps, bool previous) {
  auto ref = SplitPodRef(pod_ref);
  if (!ref) return Fail(ref.error());
  auto [ns, name] = *ref;
  if (container.empty()) {
    auto c = DefaultContainer(socket, ns, name);
    if (!c) return Fail(c.error());
    container = *c;
  }
  std::string target = "/containerLogs/" + base::PercentEncode(ns) + "/" + base::PercentEncode(name) + "/" +
                       base::PercentEncode(container) + "?follow=" + (follow ? "true" : "false");
  if (tail >= 0) target += "&tailLines=" + std::to_string(tail);
  if (timestamps) target += "&timestamps=true";
  if (previous) target += "&previous=true";
  auto r = Stream(socket, target);
  if (!r) return Fail(r.error());
  return 0;
}

int RunExec(const std::string& socket, const std::string& pod_ref, std::string container,
            const std::vector<std::string>& command, bool stdin, bool tty) {
  auto ref = SplitPodRef(pod_ref);
  if (!ref) return Fail(ref.error());
  if (container.empty()) {
    auto c = DefaultContainer(socket, ref->first, ref->second);
    if (!c) return Fail(c.error());
    container = *c;
  }
  agent::cubectl::ExecArgs a;
  a.socket = socket;
  a.ns = ref->first;
  a.pod = ref->second;
  a.container = container;
  a.command = command;
  a.stdin = stdin;
  a.tty = tty;
  return agent::cubectl::RunExec(a);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cubectl: inspect the local cubelet through its debug socket (root only)"};
  std::string socket = kDefaultSocket;
  app.add_option("--socket", socket, "cubelet debug socket")->capture_default_str();
  app.require_subcommand(1);

  auto* pods = app.add_subcommand("pods", "List the pods on this node and their containers");
  std::string output = "table";
  pods->add_option("-o,--output", output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  auto* logs = app.add_subcommand("logs", "Print the logs of a container");
  std::string pod_ref, container;
  bool follow = false, timestamps = false, previous = false;
  int64_t tail = -1;
  logs->add_flag("-f,--follow", follow, "Stream new lines until the container stops");
  logs->add_option("--tail", tail, "Lines from the end to show (-1: all)");
  logs->add_flag("--timestamps", timestamps, "Prefix each line with its RFC3339Nano time");
  logs->add_flag("-p,--previous", previous, "Logs of the previous instance of the container");
  logs->add_option("pod", pod_ref, "NAMESPACE/NAME")->required();
  logs->add_option("container", container, "Container name (optional with one container)");

  auto* exec = app.add_subcommand("exec", "Run a command in a running container");
  std::string exec_pod, exec_container;
  std::vector<std::string> command;
  bool exec_stdin = false, exec_tty = false;
  exec->add_flag("-i,--stdin", exec_stdin, "Pass stdin to the command (closed at its end)");
  exec->add_flag("-t,--tty", exec_tty, "Run the command on a terminal (with -i: interactive)");
  exec->add_option("-c,--container", exec_container,
                   "Container name (optional with one container)");
  exec->add_option("pod", exec_pod, "NAMESPACE/NAME")->required();
  exec->add_option("command", command, "-- COMMAND [ARGS...]")->required();

  CLI11_PARSE(app, argc, argv);
  if (pods->parsed()) return RunPods(socket, output);
  if (exec->parsed()) return RunExec(socket, exec_pod, exec_container, command, exec_stdin, exec_tty);
  return RunLogs(socket, pod_ref, container, follow, tail, timestamps, previous);
}
