#include "tests/apiserver/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <regex>

namespace apiserver {
namespace {

Json Convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& e : n) a.push_back(Convert(e));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = Convert(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return Json(s);  // quoted
      static const std::regex kInt("^[-+]?[0-9]+$");
      static const std::regex kFloat("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$");
      if (s == "null" || s == "~" || s == "Null" || s == "NULL") return Json(nullptr);
      if (s == "true" || s == "True" || s == "TRUE") return Json(true);
      if (s == "false" || s == "False" || s == "FALSE") return Json(false);
      if (std::regex_match(s, kInt)) {
        try {
          return Json(std::stoll(s));
        } catch (...) {
          return Json(s);
        }
      }
      if (std::regex_match(s, kFloat)) return Json(std::stod(s));
      return Json(s);
    }
  }
  return Json(nullptr);
}

}  // namespace

bool YamlToJson(std::string_view yaml, Json* out, std::string* error) {
  try {
    YAML::Node n = YAML::Load(std::string(yaml));
    *out = Convert(n);
    return true;
  } catch (const std::exception& e) {
    *error = std::string("error converting YAML to JSON: ") + e.what();
    return false;
  }
}

}  // namespace apiserver
