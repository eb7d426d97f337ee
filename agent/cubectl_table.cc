#include "agent/cubectl_table.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace agent::cubectl {
namespace {

using Row = std::vector<std::string>;

// Pads every column but the last to its widest cell + 3 spaces (kubectl's tabwriter settings).
void RenderAligned(const std::vector<Row>& rows, const std::string& indent,
                   std::vector<std::string>* lines) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line = indent;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 3, ' ');
    }
    lines->push_back(std::move(line));
  }
}

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

int64_t Int(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<int64_t>();
}

}  // namespace

std::string HumanDuration(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  int64_t seconds = duration_cast<std::chrono::seconds>(d).count();
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    return s == 0 ? std::to_string(minutes) + "m"
                  : std::to_string(minutes) + "m" + std::to_string(s) + "s";
  }
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    return m == 0 ? std::to_string(hours) + "h"
                  : std::to_string(hours) + "h" + std::to_string(m) + "m";
  }
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    return h == 0 ? std::to_string(hours / 24) + "d"
                  : std::to_string(hours / 24) + "d" + std::to_string(h) + "h";
  }
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    int64_t dy = (hours / 24) % 365;
    return dy == 0 ? std::to_string(hours / 24 / 365) + "y"
                   : std::to_string(hours / 24 / 365) + "y" + std::to_string(dy) + "d";
  }
  return std::to_string(hours / 24 / 365) + "y";
}

std::string ShortContainerId(std::string_view id) {
  size_t sep = id.find("://");
  if (sep != std::string_view::npos) id = id.substr(sep + 3);
  if (id.empty()) return "<none>";
  return std::string(id.substr(0, 12));
}

std::string ContainerStateText(std::string_view state, std::string_view reason, int exit_code) {
  if (state == "running") return "Running";
  if (state == "waiting") return reason.empty() ? "Waiting" : "Waiting:" + std::string(reason);
  if (state == "terminated") {
    std::string s = "Terminated";
    if (!reason.empty()) s += ":" + std::string(reason);
    return s + "(" + std::to_string(exit_code) + ")";
  }
  return state.empty() ? "Unknown" : std::string(state);
}

base::Result<std::string> RenderPodTable(std::string_view debug_pods_json, base::WallTime now) {
  nlohmann::json doc = nlohmann::json::parse(debug_pods_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return base::Fail("cannot parse the pod list from cubelet: not a JSON object", EINVAL);
  }
  auto pods_it = doc.find("pods");
  if (pods_it == doc.end() || !pods_it->is_array()) {
    return base::Fail("cannot parse the pod list from cubelet: no \"pods\" array", EINVAL);
  }
  std::vector<const nlohmann::json*> pods;
  for (const auto& p : *pods_it) {
    if (p.is_object()) pods.push_back(&p);
  }
  if (pods.empty()) return std::string("No pods on this node.\n");
  std::stable_sort(pods.begin(), pods.end(), [](const nlohmann::json* a, const nlohmann::json* b) {
    return std::make_pair(Str(*a, "namespace"), Str(*a, "name")) <
           std::make_pair(Str(*b, "namespace"), Str(*b, "name"));
  });

  std::vector<Row> pod_rows = {
      {"NAMESPACE", "NAME", "UID", "PHASE", "IP", "CONTAINERS", "RESTARTS", "AGE"}};
  std::vector<std::vector<Row>> container_rows;  // per pod
  std::vector<Row> all_container_rows;
  for (const auto* p : pods) {
    int64_t ready = 0, total = 0, restarts = 0;
    std::vector<Row> rows;
    auto cs = p->find("containers");
    if (cs != p->end() && cs->is_array()) {
      for (const auto& c : *cs) {
        if (!c.is_object()) continue;
        ++total;
        if (c.value("ready", false)) ++ready;
        restarts += Int(c, "restartCount");
        rows.push_back({Str(c, "name"),
                        ContainerStateText(Str(c, "state"), Str(c, "reason"),
                                           static_cast<int>(Int(c, "exitCode"))),
                        std::to_string(Int(c, "restartCount")),
                        ShortContainerId(Str(c, "containerID")), Str(c, "image")});
      }
    }
    std::string age = "<unknown>";
    if (auto start = base::ParseRfc3339(Str(*p, "startTime"))) age = HumanDuration(now - *start);
    std::string ip = Str(*p, "podIP");
    std::string uid = Str(*p, "uid");
    std::string phase = Str(*p, "phase");
    pod_rows.push_back({Str(*p, "namespace"), Str(*p, "name"), uid.empty() ? "<none>" : uid,
                        phase.empty() ? "Unknown" : phase, ip.empty() ? "<none>" : ip,
                        std::to_string(ready) + "/" + std::to_string(total),
                        std::to_string(restarts), age});
    all_container_rows.insert(all_container_rows.end(), rows.begin(), rows.end());
    container_rows.push_back(std::move(rows));
  }

  std::vector<std::string> pod_lines, container_lines;
  RenderAligned(pod_rows, "", &pod_lines);
  RenderAligned(all_container_rows, "  ", &container_lines);
  std::string out = pod_lines[0] + "\n";
  size_t next_container = 0;
  for (size_t i = 0; i < container_rows.size(); ++i) {
    out += pod_lines[i + 1] + "\n";
    for (size_t j = 0; j < container_rows[i].size(); ++j) {
      out += container_lines[next_container++] + "\n";
    }
  }
  return out;
}

}  // namespace agent::cubectl
