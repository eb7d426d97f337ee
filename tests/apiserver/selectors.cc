#include "tests/apiserver/selectors.h"

#include <algorithm>
#include <cctype>

namespace apiserver {
namespace {

std::string_view TrimWs(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits on commas that are not inside parentheses.
std::vector<std::string_view> SplitTerms(std::string_view text) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
    } else if (text[i] == '(') {
      ++depth;
    } else if (text[i] == ')') {
      --depth;
    }
  }
  return out;
}

bool ValidLabelKey(std::string_view k) {
  if (k.empty() || k.size() > 317) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == '/'))
      return false;
  }
  return true;
}

bool ValidLabelValue(std::string_view v) {
  if (v.size() > 63) return false;
  for (char c : v) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  }
  return true;
}

// Finds " in " / " notin " as a whole word; returns position of the keyword or npos.
size_t FindWord(std::string_view s, std::string_view word) {
  size_t pos = 0;
  while ((pos = s.find(word, pos)) != std::string_view::npos) {
    bool left = pos > 0 && std::isspace(static_cast<unsigned char>(s[pos - 1]));
    size_t end = pos + word.size();
    bool right = end < s.size() && (std::isspace(static_cast<unsigned char>(s[end])) ||
                                    s[end] == '(');
    if (left && right) return pos;
    pos = end;
  }
  return std::string_view::npos;
}

}  // namespace

std::optional<LabelSelector> LabelSelector::Parse(std::string_view text, std::string* error) {
  LabelSelector sel;
  text = TrimWs(text);
  if (text.empty()) return sel;
  for (std::string_view term : SplitTerms(text)) {
    term = TrimWs(term);
    Requirement r;
    if (term.empty()) {
      *error = "found '', expected: !, identifier, or 'end of string'";
      return std::nullopt;
    }
    size_t p;
    if (term[0] == '!') {
      r.key = std::string(TrimWs(term.substr(1)));
      r.op = Requirement::Op::kDoesNotExist;
    } else if ((p = FindWord(term, "notin")) != std::string_view::npos ||
               (p = FindWord(term, "in")) != std::string_view::npos) {
      bool notin = term.substr(p, 5) == "notin";
      r.key = std::string(TrimWs(term.substr(0, p)));
      r.op = notin ? Requirement::Op::kNotIn : Requirement::Op::kIn;
      std::string_view rest = TrimWs(term.substr(p + (notin ? 5 : 2)));
      if (rest.size() < 2 || rest.front() != '(' || rest.back() != ')') {
        *error = "found '" + std::string(rest) + "', expected: '('";
        return std::nullopt;
      }
      rest = rest.substr(1, rest.size() - 2);
      size_t start = 0;
      for (size_t i = 0; i <= rest.size(); ++i) {
        if (i == rest.size() || rest[i] == ',') {
          std::string v(TrimWs(rest.substr(start, i - start)));
          if (!ValidLabelValue(v)) {
            *error = "invalid label value: \"" + v + "\"";
            return std::nullopt;
          }
          r.values.push_back(v);
          start = i + 1;
        }
      }
    } else if ((p = term.find("!=")) != std::string_view::npos) {
      r.key = std::string(TrimWs(term.substr(0, p)));
      r.op = Requirement::Op::kNotEquals;
      r.values.emplace_back(TrimWs(term.substr(p + 2)));
    } else if ((p = term.find("==")) != std::string_view::npos) {
      r.key = std::string(TrimWs(term.substr(0, p)));
      r.values.emplace_back(TrimWs(term.substr(p + 2)));
    } else if ((p = term.find('=')) != std::string_view::npos) {
      r.key = std::string(TrimWs(term.substr(0, p)));
      r.values.emplace_back(TrimWs(term.substr(p + 1)));
    } else {
      r.key = std::string(term);
      r.op = Requirement::Op::kExists;
    }
    if (!ValidLabelKey(r.key)) {
      *error = "invalid label key \"" + r.key + "\"";
      return std::nullopt;
    }
    for (const auto& v : r.values) {
      if (!ValidLabelValue(v)) {
        *error = "invalid label value: \"" + v + "\"";
        return std::nullopt;
      }
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool LabelSelector::Matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : reqs_) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    switch (r.op) {
      case Requirement::Op::kEquals:
        if (!has || it->second != r.values[0]) return false;
        break;
      case Requirement::Op::kNotEquals:
        if (has && it->second == r.values[0]) return false;
        break;
      case Requirement::Op::kIn:
        if (!has || std::find(r.values.begin(), r.values.end(), it->second) == r.values.end())
          return false;
        break;
      case Requirement::Op::kNotIn:
        if (has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end())
          return false;
        break;
      case Requirement::Op::kExists:
        if (!has) return false;
        break;
      case Requirement::Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

std::optional<FieldSelector> FieldSelector::Parse(std::string_view text, std::string* error) {
  FieldSelector sel;
  text = TrimWs(text);
  if (text.empty()) return sel;
  for (std::string_view term : SplitTerms(text)) {
    term = TrimWs(term);
    Requirement r;
    size_t p;
    if ((p = term.find("!=")) != std::string_view::npos) {
      r.op = Requirement::Op::kNotEquals;
      r.key = std::string(term.substr(0, p));
      r.values.emplace_back(term.substr(p + 2));
    } else if ((p = term.find("==")) != std::string_view::npos) {
      r.key = std::string(term.substr(0, p));
      r.values.emplace_back(term.substr(p + 2));
    } else if ((p = term.find('=')) != std::string_view::npos) {
      r.key = std::string(term.substr(0, p));
      r.values.emplace_back(term.substr(p + 1));
    } else {
      *error = "invalid selector: '" + std::string(text) + "'; can't understand '" +
               std::string(term) + "'";
      return std::nullopt;
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::Matches(const std::map<std::string, std::string>& fields) const {
  for (const auto& r : reqs_) {
    auto it = fields.find(r.key);
    std::string value = it == fields.end() ? "" : it->second;
    if (r.op == Requirement::Op::kEquals && value != r.values[0]) return false;
    if (r.op == Requirement::Op::kNotEquals && value == r.values[0]) return false;
  }
  return true;
}

std::optional<std::string> FieldSelector::RequiredValue(std::string_view field) const {
  for (const auto& r : reqs_) {
    if (r.key == field && r.op == Requirement::Op::kEquals) return r.values[0];
  }
  return std::nullopt;
}

}  // namespace apiserver
