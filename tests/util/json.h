// A small strict JSON parser for tests that check the tools' --json output: it accepts only valid
// JSON (RFC 8259, without surrogate pairs), so a test that parses output also checks its syntax.
#pragma once

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace stablefs::testing {

struct Json {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type = kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  bool Has(const std::string& key) const { return type == kObject && object.count(key) > 0; }
  // The member `key`; a null value if there is none.
  const Json& operator[](const std::string& key) const {
    static const Json null;
    auto it = object.find(key);
    return it == object.end() ? null : it->second;
  }
};

class JsonParser {
 public:
  // Parses all of `text` into *out; false (and *error says where) if it is not one JSON value.
  static bool Parse(const std::string& text, Json* out, std::string* error) {
    *out = Json();
    JsonParser p(text);
    if (!p.Value(out, 0)) {
      *error = "invalid JSON at byte " + std::to_string(p.pos_);
      return false;
    }
    p.Space();
    if (p.pos_ != text.size()) {
      *error = "trailing characters at byte " + std::to_string(p.pos_);
      return false;
    }
    return true;
  }

 private:
  explicit JsonParser(const std::string& s) : s_(s) {}

  void Space() {
    while (pos_ < s_.size() && std::strchr(" \t\r\n", s_[pos_]) != nullptr) pos_++;
  }
  bool Eat(char c) {
    Space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      pos_++;
      return true;
    }
    return false;
  }
  bool Word(const char* w) {
    const size_t n = std::strlen(w);
    if (s_.compare(pos_, n, w) != 0) return false;
    pos_ += n;
    return true;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      const char* plain = std::strchr("\"\\/bfnrt", e);
      if (e == 'u') {
        if (pos_ + 4 > s_.size()) return false;
        for (int i = 0; i < 4; i++) {
          if (!std::isxdigit(static_cast<unsigned char>(s_[pos_ + i]))) return false;
        }
        const long cp = std::strtol(s_.substr(pos_, 4).c_str(), nullptr, 16);
        pos_ += 4;
        *out += cp < 0x80 ? static_cast<char>(cp) : '?';
      } else if (plain != nullptr && e != '\0') {
        *out += "\"\\/\b\f\n\r\t"[plain - "\"\\/bfnrt"];
      } else {
        return false;
      }
    }
    return false;
  }
  bool Number(double* out) {
    const size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') pos_++;
    if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_]))) return false;
    if (s_[pos_] == '0') {
      pos_++;
    } else {
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) pos_++;
    }
    auto digits = [&] {
      const size_t d = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) pos_++;
      return pos_ > d;
    };
    if (pos_ < s_.size() && s_[pos_] == '.' && (++pos_, !digits())) return false;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      pos_++;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) pos_++;
      if (!digits()) return false;
    }
    *out = std::strtod(s_.substr(start, pos_ - start).c_str(), nullptr);
    return true;
  }
  bool Value(Json* v, int depth) {
    if (depth > 64) return false;
    Space();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') {
      pos_++;
      v->type = Json::kObject;
      if (Eat('}')) return true;
      do {
        std::string key;
        Space();
        if (!String(&key) || !Eat(':') || !Value(&v->object[key], depth + 1)) return false;
      } while (Eat(','));
      return Eat('}');
    }
    if (c == '[') {
      pos_++;
      v->type = Json::kArray;
      if (Eat(']')) return true;
      do {
        v->array.emplace_back();
        if (!Value(&v->array.back(), depth + 1)) return false;
      } while (Eat(','));
      return Eat(']');
    }
    if (c == '"') {
      v->type = Json::kString;
      return String(&v->string);
    }
    if (Word("true") || Word("false")) {
      v->type = Json::kBool;
      v->boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
      return true;
    }
    if (Word("null")) return true;
    v->type = Json::kNumber;
    return Number(&v->number);
  }

  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace stablefs::testing
