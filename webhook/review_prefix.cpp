#include "webhook/review_prefix.h"

#include <optional>

#include "webhook/admission_review.h"

namespace kcache::webhook {

namespace {

// A forward-only reader over a JSON text that may end anywhere; every read fails cleanly at the
// end instead of reading past it.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool atEnd() const { return position_ >= text_.size(); }
  char peek() const { return atEnd() ? '\0' : text_[position_]; }

  void skipSpace() {
    while (!atEnd() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++position_;
    }
  }

  bool consume(char expected) {
    skipSpace();
    if (peek() != expected) return false;
    ++position_;
    return true;
  }

  // A string whose escapes are all simple or ASCII \u escapes; nullopt otherwise or when cut.
  std::optional<std::string> readString() {
    skipSpace();
    if (peek() != '"') return std::nullopt;
    ++position_;
    std::string out;
    while (!atEnd()) {
      const char c = text_[position_++];
      if (c == '"') return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (atEnd()) return std::nullopt;
      const char escaped = text_[position_++];
      switch (escaped) {
        case '"':
        case '\\':
        case '/':
          out.push_back(escaped);
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'u': {
          if (text_.size() - position_ < 4) return std::nullopt;
          unsigned value = 0;
          for (int i = 0; i < 4; ++i) {
            const char digit = text_[position_++];
            value <<= 4;
            if (digit >= '0' && digit <= '9') {
              value |= static_cast<unsigned>(digit - '0');
            } else if (digit >= 'a' && digit <= 'f') {
              value |= static_cast<unsigned>(digit - 'a' + 10);
            } else if (digit >= 'A' && digit <= 'F') {
              value |= static_cast<unsigned>(digit - 'A' + 10);
            } else {
              return std::nullopt;
            }
          }
          if (value >= 0x80) return std::nullopt;  // identities are ASCII
          out.push_back(static_cast<char>(value));
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Skips one value of any type; false when the text ends first or is not JSON-like.
  bool skipValue() {
    skipSpace();
    const char first = peek();
    if (first == '"') return readString().has_value() || skipRawString();
    if (first != '{' && first != '[') {
      const std::size_t start = position_;
      while (!atEnd() && peek() != ',' && peek() != '}' && peek() != ']' && peek() != ' ' &&
             peek() != '\n' && peek() != '\r' && peek() != '\t') {
        ++position_;
      }
      return position_ > start && !atEnd();
    }
    // A container: count brackets, stepping over strings.
    std::size_t depth = 0;
    while (!atEnd()) {
      const char c = peek();
      if (c == '"') {
        if (!skipRawString()) return false;
        continue;
      }
      ++position_;
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) return true;
      }
    }
    return false;
  }

 private:
  // Steps over a string without decoding it (any escapes).
  bool skipRawString() {
    ++position_;  // the opening quote
    while (!atEnd()) {
      const char c = text_[position_++];
      if (c == '\\') {
        if (atEnd()) return false;
        ++position_;
      } else if (c == '"') {
        return true;
      }
    }
    return false;
  }

  std::string_view text_;
  std::size_t position_ = 0;
};

// Visits the members of the object the cursor is at; `member(key)` reads or skips the value and
// returns false to stop. False when the object was cut short or malformed.
template <typename Member>
bool forEachMember(Cursor& cursor, Member member) {
  if (!cursor.consume('{')) return false;
  if (cursor.consume('}')) return true;
  while (true) {
    auto key = cursor.readString();
    if (!key || !cursor.consume(':')) return false;
    if (!member(*key)) return false;
    if (cursor.consume(',')) continue;
    return cursor.consume('}');
  }
}

}  // namespace

ReviewIdentity scanReviewIdentity(std::string_view prefix) {
  ReviewIdentity identity;
  Cursor cursor(prefix);
  forEachMember(cursor, [&](const std::string& key) {
    if (key == "apiVersion") {
      auto value = cursor.readString();
      if (value) identity.apiVersion = std::move(*value);
      return value.has_value();
    }
    if (key == "request") {
      cursor.skipSpace();
      if (cursor.peek() != '{') return cursor.skipValue();
      return forEachMember(cursor, [&](const std::string& inner) {
        if (inner == "uid") {
          auto value = cursor.readString();
          if (value) identity.uid = std::move(*value);
          return value.has_value();
        }
        return cursor.skipValue();
      });
    }
    return cursor.skipValue();
  });
  return identity;
}

std::string allowedAnswerFor(std::string_view prefix) {
  auto identity = scanReviewIdentity(prefix);
  AdmissionRequest request;
  request.apiVersion = identity.apiVersion == "admission.k8s.io/v1beta1" ? identity.apiVersion
                                                                         : "admission.k8s.io/v1";
  request.kind = "AdmissionReview";
  request.uid = std::move(identity.uid);
  return encodeAdmissionResponse(request, AdmissionResponse{});
}

}  // namespace kcache::webhook
