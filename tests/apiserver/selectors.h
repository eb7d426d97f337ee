#pragma once
// Label and field selectors as the real API server parses them
// (k8s.io/apimachinery/pkg/labels and pkg/fields).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apiserver {

struct Requirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  // Parses "a=b,c!=d,e,!f,g in (x,y),h notin (z)". nullopt + error text on a syntax error.
  static std::optional<LabelSelector> Parse(std::string_view text, std::string* error);
  bool Matches(const std::map<std::string, std::string>& labels) const;
  bool Empty() const { return reqs_.empty(); }
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

class FieldSelector {
 public:
  // Parses "metadata.name=x,spec.nodeName!=y" (=, ==, !=).
  static std::optional<FieldSelector> Parse(std::string_view text, std::string* error);
  // `fields` maps a field path to the object's value (the fields a resource supports).
  bool Matches(const std::map<std::string, std::string>& fields) const;
  bool Empty() const { return reqs_.empty(); }
  // Value required by an equality term on `field`, if any.
  std::optional<std::string> RequiredValue(std::string_view field) const;
  const std::vector<Requirement>& requirements() const { return reqs_; }

 private:
  std::vector<Requirement> reqs_;
};

}  // namespace apiserver
