#include "core/execution_key.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "core/go_json.h"
#include "core/utf8.h"

namespace kcache::core {
namespace {

// Go's encoding/json scanner refuses to nest deeper than this (the top-level value counts).
constexpr size_t kMaxNestingDepth = 10000;
// Offsets into the arena are 32-bit; decoded text can grow to a few times the input.
constexpr size_t kMaxTemplateBytes = 256u << 20;

enum class Kind : uint8_t { kNull, kTrue, kFalse, kNumber, kString, kArray, kObject };

// String and number nodes point into the text arena; arrays and objects into `members`.
struct Node {
  Kind kind;
  uint32_t first;
  uint32_t count;
};

struct Member {
  uint32_t keyOffset;
  uint32_t keyLength;
  uint32_t node;
};

// How the members of a container are treated. Kubeflow keeps only some fields of the template,
// so everything else is validated (Go rejects the whole template on any error) but not stored.
enum class Role : uint8_t { kSkip, kFull, kTemplate, kContainer };

bool isKeptTemplateField(std::string_view key) {
  return key == "container" || key == "inputs" || key == "outputs" || key == "volumes" ||
         key == "initContainers" || key == "sidecars";
}

bool isKeptContainerField(std::string_view key) {
  return key == "image" || key == "command" || key == "args" || key == "env" ||
         key == "volumeMounts";
}

// Bytes a string can hold without any special handling.
constexpr std::array<uint8_t, 256> makePlainStringByteTable() {
  std::array<uint8_t, 256> table{};
  for (int c = 0x20; c < 0x80; ++c) table[c] = 1;
  table['"'] = 0;
  table['\\'] = 0;
  return table;
}
constexpr auto kPlainStringByte = makePlainStringByteTable();

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string describeByte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (c == '\'') return "'\\''";
  if (c == '"') return "'\"'";
  if (byte >= 0x20 && byte < 0x7F) return std::string("'") + c + "'";
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "'\\x%02x'", byte);
  return buffer;
}

// Parses an ARGO_TEMPLATE the way Go's json.Unmarshal into map[string]interface{} does, keeping
// only the fields that enter Kubeflow's key, then writes them as json.Marshal would.
// Iterative, so that 10000 levels of nesting cannot exhaust a thread's stack.
class TemplateCanonicalizer {
 public:
  explicit TemplateCanonicalizer(std::string_view input) : input_(input) {}

  Expected<std::string, KeyError> run() {
    if (input_.size() > kMaxTemplateBytes) {
      return fail(KeyErrorKind::kJsonSyntax, "template of " + std::to_string(input_.size()) +
                                                 " bytes exceeds the limit of " +
                                                 std::to_string(kMaxTemplateBytes));
    }
    skipWhitespace();
    if (atEnd()) return syntaxError("unexpected end of JSON input");
    const char first = peek();
    const Role topRole = first == '{' ? Role::kTemplate : Role::kSkip;
    if (!beginValue(topRole, false, 0, 0)) return takeError();
    while (!stack_.empty()) {
      if (!step()) return takeError();
    }
    skipWhitespace();
    if (!atEnd()) {
      return syntaxError("invalid character " + describeByte(peek()) + " after top-level value");
    }
    if (typeError_) return fail(KeyErrorKind::kJsonType, *typeError_);
    if (first != '{' && first != 'n') {
      return fail(KeyErrorKind::kJsonType, "json: cannot unmarshal " + goTypeName(first) +
                                               " into Go value of type map[string]interface {}");
    }
    if (!root_) return std::string("{}");  // top-level null: an empty map
    if (auto shapeError = checkContainerIsObject())
      return fail(KeyErrorKind::kTemplateShape, *shapeError);
    return serialize(*root_);
  }

 private:
  struct Frame {
    bool isObject;
    bool expectingFirst;
    Role role;
    bool attach;  // whether the finished node becomes a member of the enclosing container
    uint32_t keyOffset;
    uint32_t keyLength;
    size_t scratchStart;
  };

  // ---- errors -----------------------------------------------------------------------------
  Unexpected<KeyError> fail(KeyErrorKind kind, std::string message) {
    return Unexpected<KeyError>{KeyError{kind, std::move(message)}};
  }
  Unexpected<KeyError> syntaxError(std::string message) {
    return fail(KeyErrorKind::kJsonSyntax,
                std::move(message) + " (offset " + std::to_string(position_) + ")");
  }
  bool setSyntaxError(std::string message) {
    pendingError_ = KeyError{KeyErrorKind::kJsonSyntax,
                             std::move(message) + " (offset " + std::to_string(position_) + ")"};
    return false;
  }
  Unexpected<KeyError> takeError() { return Unexpected<KeyError>{std::move(pendingError_)}; }

  static std::string goTypeName(char first) {
    switch (first) {
      case '[':
        return "array";
      case '"':
        return "string";
      case 't':
      case 'f':
        return "bool";
      default:
        return "number";
    }
  }

  // ---- input ------------------------------------------------------------------------------
  bool atEnd() const { return position_ >= input_.size(); }
  char peek() const { return input_[position_]; }
  void skipWhitespace() {
    while (position_ < input_.size()) {
      const char c = input_[position_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++position_;
    }
  }
  bool unexpectedEndOrCharacter(std::string_view context) {
    if (atEnd()) return setSyntaxError("unexpected end of JSON input");
    return setSyntaxError("invalid character " + describeByte(peek()) + " " + std::string(context));
  }

  // ---- values -----------------------------------------------------------------------------
  bool beginValue(Role role, bool attach, uint32_t keyOffset, uint32_t keyLength) {
    if (atEnd()) return setSyntaxError("unexpected end of JSON input");
    const char c = peek();
    switch (c) {
      case '{':
      case '[': {
        if (stack_.size() + 1 > kMaxNestingDepth) return setSyntaxError("exceeded max depth");
        ++position_;
        stack_.push_back(
            Frame{c == '{', true, role, attach, keyOffset, keyLength, scratch_.size()});
        return true;
      }
      case '"': {
        if (role == Role::kSkip) return scanString(nullptr);
        const auto offset = static_cast<uint32_t>(arena_.size());
        if (!scanString(&arena_)) return false;
        return addScalar(Kind::kString, offset, attach, keyOffset, keyLength);
      }
      case 't':
        return scanLiteral("true", Kind::kTrue, role, attach, keyOffset, keyLength);
      case 'f':
        return scanLiteral("false", Kind::kFalse, role, attach, keyOffset, keyLength);
      case 'n':
        return scanLiteral("null", Kind::kNull, role, attach, keyOffset, keyLength);
      default:
        if (c == '-' || (c >= '0' && c <= '9'))
          return scanNumber(role, attach, keyOffset, keyLength);
        return setSyntaxError("invalid character " + describeByte(c) +
                              " looking for beginning of value");
    }
  }

  bool addScalar(Kind kind, uint32_t textOffset, bool attach, uint32_t keyOffset,
                 uint32_t keyLength) {
    const auto textLength = static_cast<uint32_t>(arena_.size() - textOffset);
    const auto index = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(Node{kind, textOffset, textLength});
    if (attach) scratch_.push_back(Member{keyOffset, keyLength, index});
    return true;
  }

  bool scanLiteral(std::string_view literal, Kind kind, Role role, bool attach, uint32_t keyOffset,
                   uint32_t keyLength) {
    for (char expected : literal) {
      if (atEnd()) return setSyntaxError("unexpected end of JSON input");
      if (peek() != expected) {
        return setSyntaxError("invalid character " + describeByte(peek()) + " in literal " +
                              std::string(literal) + " (expecting " + describeByte(expected) + ")");
      }
      ++position_;
    }
    if (role == Role::kSkip) return true;
    return addScalar(kind, static_cast<uint32_t>(arena_.size()), attach, keyOffset, keyLength);
  }

  bool scanDigits() {
    const size_t start = position_;
    while (!atEnd() && peek() >= '0' && peek() <= '9') ++position_;
    return position_ > start;
  }

  bool scanNumber(Role role, bool attach, uint32_t keyOffset, uint32_t keyLength) {
    const size_t start = position_;
    bool hasExponent = false;
    if (peek() == '-') {
      ++position_;
      if (atEnd() || peek() < '0' || peek() > '9')
        return unexpectedEndOrCharacter("in numeric literal");
    }
    if (peek() == '0') {
      ++position_;
    } else {
      scanDigits();
    }
    if (!atEnd() && peek() == '.') {
      ++position_;
      if (!scanDigits()) return unexpectedEndOrCharacter("after decimal point in numeric literal");
    }
    if (!atEnd() && (peek() == 'e' || peek() == 'E')) {
      hasExponent = true;
      ++position_;
      if (!atEnd() && (peek() == '+' || peek() == '-')) ++position_;
      if (!scanDigits()) return unexpectedEndOrCharacter("in exponent of numeric literal");
    }
    const std::string_view literal = input_.substr(start, position_ - start);
    // A number Go would reject as out of float64 range fails the template even where it is not
    // kept; only long literals or ones with an exponent can be out of range.
    if (role == Role::kSkip && !hasExponent && literal.size() < 300) return true;
    double value = 0;
    if (!toFloat64(literal, value) && !typeError_) {
      typeError_ = "json: cannot unmarshal number " + std::string(literal) +
                   " into Go value of type float64";
    }
    if (role == Role::kSkip) return true;
    const auto offset = static_cast<uint32_t>(arena_.size());
    gojson::appendNumber(arena_, value);
    return addScalar(Kind::kNumber, offset, attach, keyOffset, keyLength);
  }

  // strconv.ParseFloat(literal, 64): correctly rounded; underflow gives a signed zero, overflow
  // is an error.
  static bool toFloat64(std::string_view literal, double& value) {
    const bool negative = literal.front() == '-';
    const auto result = std::from_chars(literal.data(), literal.data() + literal.size(), value);
    if (result.ec == std::errc()) return true;
    // Out of range: decide between overflow and underflow from the decimal magnitude.
    size_t i = negative ? 1 : 0;
    long magnitude = 0;
    bool seenNonZero = false;
    for (; i < literal.size() && literal[i] >= '0' && literal[i] <= '9'; ++i) {
      if (literal[i] != '0') seenNonZero = true;
      if (seenNonZero) ++magnitude;
    }
    if (i < literal.size() && literal[i] == '.') {
      for (++i; i < literal.size() && literal[i] >= '0' && literal[i] <= '9'; ++i) {
        if (seenNonZero) continue;
        if (literal[i] != '0') {
          seenNonZero = true;
        } else {
          --magnitude;
        }
      }
    }
    if (!seenNonZero) {
      value = negative ? -0.0 : 0.0;
      return true;
    }
    if (i < literal.size() && (literal[i] == 'e' || literal[i] == 'E')) {
      ++i;
      bool negativeExponent = false;
      if (literal[i] == '+' || literal[i] == '-') negativeExponent = literal[i++] == '-';
      long exponent = 0;
      for (; i < literal.size(); ++i)
        exponent = std::min(exponent * 10 + (literal[i] - '0'), 1L << 40);
      magnitude += negativeExponent ? -exponent : exponent;
    }
    if (magnitude > 0) return false;
    value = negative ? -0.0 : 0.0;
    return true;
  }

  // Decodes the string at the current position (a quote) into `out`, or only validates it when
  // `out` is null. Invalid UTF-8 becomes U+FFFD one byte at a time; bad surrogates become U+FFFD.
  bool scanString(std::string* out) {
    ++position_;  // opening quote
    const auto* bytes = reinterpret_cast<const unsigned char*>(input_.data());
    const size_t size = input_.size();
    for (;;) {
      const size_t runStart = position_;
      while (position_ < size && kPlainStringByte[bytes[position_]]) ++position_;
      if (out && position_ > runStart) out->append(input_.data() + runStart, position_ - runStart);
      if (position_ >= size) return setSyntaxError("unexpected end of JSON input");
      const unsigned char c = bytes[position_];
      if (c == '"') {
        ++position_;
        return true;
      }
      if (c == '\\') {
        if (!scanEscape(out)) return false;
        continue;
      }
      if (c < 0x20) {
        return setSyntaxError("invalid character " + describeByte(static_cast<char>(c)) +
                              " in string literal");
      }
      const size_t length = utf8::validSequenceLength(bytes + position_, size - position_);
      if (length == 0) {
        if (out) utf8::appendCodePoint(*out, utf8::kReplacementCharacter);
        ++position_;
      } else {
        if (out) out->append(input_.data() + position_, length);
        position_ += length;
      }
    }
  }

  // Four hex digits after "\u" at `at`, or -1.
  int readHex4(size_t at) const {
    if (at + 4 > input_.size()) return -1;
    int value = 0;
    for (size_t k = 0; k < 4; ++k) {
      const int digit = hexValue(input_[at + k]);
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    return value;
  }

  bool scanEscape(std::string* out) {
    ++position_;  // backslash
    if (atEnd()) return setSyntaxError("unexpected end of JSON input");
    const char c = peek();
    char decoded = 0;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        decoded = c;
        break;
      case 'b':
        decoded = '\b';
        break;
      case 'f':
        decoded = '\f';
        break;
      case 'n':
        decoded = '\n';
        break;
      case 'r':
        decoded = '\r';
        break;
      case 't':
        decoded = '\t';
        break;
      case 'u':
        return scanUnicodeEscape(out);
      default:
        return setSyntaxError("invalid character " + describeByte(c) + " in string escape code");
    }
    ++position_;
    if (out) out->push_back(decoded);
    return true;
  }

  bool scanUnicodeEscape(std::string* out) {
    ++position_;  // 'u'
    const int unit = readHex4(position_);
    if (unit < 0) {
      // Point at the first bad digit, as Go's scanner does.
      for (size_t k = 0; k < 4; ++k, ++position_) {
        if (atEnd()) return setSyntaxError("unexpected end of JSON input");
        if (hexValue(peek()) < 0) break;
      }
      return setSyntaxError("invalid character " + describeByte(peek()) +
                            " in \\u hexadecimal character escape");
    }
    position_ += 4;
    uint32_t codePoint = static_cast<uint32_t>(unit);
    if (unit >= 0xD800 && unit < 0xE000) {
      // Only a high surrogate followed by an escaped low surrogate forms a pair; anything else
      // is U+FFFD and the following escape is decoded on its own.
      codePoint = utf8::kReplacementCharacter;
      if (unit < 0xDC00 && position_ + 1 < input_.size() && input_[position_] == '\\' &&
          input_[position_ + 1] == 'u') {
        const int low = readHex4(position_ + 2);
        if (low >= 0xDC00 && low < 0xE000) {
          codePoint = 0x10000 + ((static_cast<uint32_t>(unit) - 0xD800) << 10) +
                      (static_cast<uint32_t>(low) - 0xDC00);
          position_ += 6;
        }
      }
    }
    if (out) utf8::appendCodePoint(*out, codePoint);
    return true;
  }

  // ---- containers -------------------------------------------------------------------------
  static Role memberRole(Role parent, std::string_view key, char valueStart) {
    switch (parent) {
      case Role::kSkip:
        return Role::kSkip;
      case Role::kFull:
        return Role::kFull;
      case Role::kTemplate:
        if (!isKeptTemplateField(key)) return Role::kSkip;
        return key == "container" && valueStart == '{' ? Role::kContainer : Role::kFull;
      case Role::kContainer:
        return isKeptContainerField(key) ? Role::kFull : Role::kSkip;
    }
    return Role::kSkip;
  }

  static Role elementRole(Role parent) { return parent == Role::kSkip ? Role::kSkip : Role::kFull; }

  // One transition inside the innermost open container.
  bool step() {
    Frame& frame = stack_.back();
    skipWhitespace();
    if (atEnd()) return setSyntaxError("unexpected end of JSON input");
    const char close = frame.isObject ? '}' : ']';
    if (frame.expectingFirst) {
      if (peek() == close) {
        ++position_;
        return closeContainer();
      }
      frame.expectingFirst = false;
    } else if (peek() == close) {
      ++position_;
      return closeContainer();
    } else if (peek() == ',') {
      ++position_;
      skipWhitespace();
    } else {
      return setSyntaxError(
          "invalid character " + describeByte(peek()) +
          (frame.isObject ? " after object key:value pair" : " after array element"));
    }
    if (!frame.isObject)
      return beginValue(elementRole(frame.role), frame.role != Role::kSkip, 0, 0);

    if (atEnd() || peek() != '"')
      return unexpectedEndOrCharacter("looking for beginning of object key string");
    const Role parentRole = frame.role;
    const auto keyOffset = static_cast<uint32_t>(arena_.size());
    if (!scanString(parentRole == Role::kSkip ? nullptr : &arena_)) return false;
    const auto keyLength = static_cast<uint32_t>(arena_.size() - keyOffset);
    skipWhitespace();
    if (atEnd() || peek() != ':') return unexpectedEndOrCharacter("after object key");
    ++position_;
    skipWhitespace();
    if (atEnd()) return setSyntaxError("unexpected end of JSON input");
    const std::string_view key(arena_.data() + keyOffset, keyLength);
    const Role childRole = memberRole(parentRole, key, peek());
    if (childRole == Role::kSkip && parentRole != Role::kSkip) arena_.resize(keyOffset);
    // `frame` may dangle after beginValue pushes; it is not used below.
    return beginValue(childRole, childRole != Role::kSkip, keyOffset, keyLength);
  }

  bool closeContainer() {
    const Frame frame = stack_.back();
    stack_.pop_back();
    if (frame.role == Role::kSkip) return true;
    auto begin = scratch_.begin() + static_cast<std::ptrdiff_t>(frame.scratchStart);
    auto end = scratch_.end();
    if (frame.isObject) end = sortAndKeepLastDuplicate(begin, end);
    const auto first = static_cast<uint32_t>(members_.size());
    members_.insert(members_.end(), begin, end);
    const auto count = static_cast<uint32_t>(members_.size() - first);
    scratch_.resize(frame.scratchStart);
    const auto index = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(Node{frame.isObject ? Kind::kObject : Kind::kArray, first, count});
    if (frame.attach) {
      scratch_.push_back(Member{frame.keyOffset, frame.keyLength, index});
    } else {
      root_ = index;
    }
    return true;
  }

  std::string_view keyOf(const Member& member) const {
    return std::string_view(arena_.data() + member.keyOffset, member.keyLength);
  }

  // Go's map keeps the last value of a duplicated key; json.Marshal sorts keys bytewise.
  std::vector<Member>::iterator sortAndKeepLastDuplicate(std::vector<Member>::iterator begin,
                                                         std::vector<Member>::iterator end) {
    std::stable_sort(begin, end,
                     [this](const Member& a, const Member& b) { return keyOf(a) < keyOf(b); });
    auto write = begin;
    for (auto read = begin; read != end; ++read) {
      const auto next = read + 1;
      if (next != end && keyOf(*next) == keyOf(*read)) continue;
      *write++ = *read;
    }
    return write;
  }

  std::optional<std::string> checkContainerIsObject() const {
    const Node& root = nodes_[*root_];
    for (uint32_t i = 0; i < root.count; ++i) {
      const Member& member = members_[root.first + i];
      if (keyOf(member) != "container") continue;
      const Kind kind = nodes_[member.node].kind;
      if (kind == Kind::kObject) return std::nullopt;
      static constexpr std::string_view kGoTypes[] = {"nil",     "bool",   "bool",
                                                      "float64", "string", "[]interface {}"};
      return "template field \"container\" is " + std::string(kGoTypes[static_cast<int>(kind)]) +
             ", not an object (Kubeflow's cache server panics on this template)";
    }
    return std::nullopt;
  }

  // ---- output -----------------------------------------------------------------------------
  std::string serialize(uint32_t rootIndex) const {
    std::string out;
    out.reserve(input_.size());
    struct Cursor {
      uint32_t node;
      uint32_t next;
    };
    std::vector<Cursor> cursors;
    auto emit = [&](uint32_t index) {
      const Node& node = nodes_[index];
      switch (node.kind) {
        case Kind::kNull:
          out.append("null");
          break;
        case Kind::kTrue:
          out.append("true");
          break;
        case Kind::kFalse:
          out.append("false");
          break;
        case Kind::kNumber:
          out.append(arena_.data() + node.first, node.count);
          break;
        case Kind::kString:
          gojson::appendQuoted(out, std::string_view(arena_.data() + node.first, node.count));
          break;
        case Kind::kArray:
        case Kind::kObject:
          out.push_back(node.kind == Kind::kObject ? '{' : '[');
          cursors.push_back(Cursor{index, 0});
          break;
      }
    };
    emit(rootIndex);
    while (!cursors.empty()) {
      Cursor& cursor = cursors.back();
      const Node& node = nodes_[cursor.node];
      if (cursor.next == node.count) {
        out.push_back(node.kind == Kind::kObject ? '}' : ']');
        cursors.pop_back();
        continue;
      }
      if (cursor.next > 0) out.push_back(',');
      const Member& member = members_[node.first + cursor.next++];
      if (node.kind == Kind::kObject) {
        gojson::appendQuoted(out, keyOf(member));
        out.push_back(':');
      }
      emit(member.node);  // may grow `cursors`; `cursor` is not used after this
    }
    return out;
  }

  std::string_view input_;
  size_t position_ = 0;
  std::string arena_;
  std::vector<Node> nodes_;
  std::vector<Member> members_;
  std::vector<Member> scratch_;
  std::vector<Frame> stack_;
  std::optional<uint32_t> root_;
  std::optional<std::string> typeError_;
  KeyError pendingError_{KeyErrorKind::kJsonSyntax, {}};
};

constexpr std::string_view kNamespaceBoundPrefix = "{\"namespace\":";
constexpr std::string_view kNamespaceBoundMiddle = ",\"template\":";
constexpr std::string_view kNamespaceBoundSuffix = "}";

// SHA-256 over the concatenation of `pieces`, in lower-case hex; hashing the pieces in turn
// spares a copy of the canonical bytes for the namespace-bound key.
std::string sha256Hex(std::initializer_list<std::string_view> pieces) {
  struct ContextDeleter {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  struct DigestDeleter {
    void operator()(EVP_MD* digest) const { EVP_MD_free(digest); }
  };
  // Fetched once and a context per thread: OpenSSL 3 looks the algorithm up on every
  // EVP_sha256() initialisation and allocates a context, which costs as much as hashing a
  // small template.
  static const std::unique_ptr<EVP_MD, DigestDeleter> sha256(
      EVP_MD_fetch(nullptr, "SHA256", nullptr));
  thread_local const std::unique_ptr<EVP_MD_CTX, ContextDeleter> context(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  bool ok = sha256 != nullptr && context != nullptr &&
            EVP_DigestInit_ex(context.get(), sha256.get(), nullptr) == 1;
  for (std::string_view piece : pieces) {
    ok = ok && EVP_DigestUpdate(context.get(), piece.data(), piece.size()) == 1;
  }
  ok = ok && EVP_DigestFinal_ex(context.get(), digest, &digestLength) == 1;
  if (!ok) {
    // Only reachable if OpenSSL itself is broken (no SHA-256 provider): nothing can be cached.
    throw std::runtime_error("OpenSSL SHA-256 digest failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(digestLength * 2, '0');
  for (unsigned int i = 0; i < digestLength; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xF];
  }
  return hex;
}

std::string goQuoted(std::string_view text) {
  std::string quoted;
  gojson::appendQuoted(quoted, text);
  return quoted;
}

}  // namespace

std::string_view toString(KeyErrorKind kind) {
  switch (kind) {
    case KeyErrorKind::kJsonSyntax:
      return "json_syntax";
    case KeyErrorKind::kJsonType:
      return "json_type";
    case KeyErrorKind::kTemplateShape:
      return "template_shape";
  }
  return "unknown";
}

Expected<ExecutionKey, std::string> ExecutionKey::fromHex(std::string_view hex) {
  const bool wellFormed = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                          });
  if (!wellFormed) {
    return Unexpected<std::string>{"execution key must be 64 lower-case hex characters, got " +
                                   std::to_string(hex.size()) + " characters"};
  }
  return ExecutionKey(std::string(hex));
}

std::string keyPreview(std::string_view key) {
  return key.size() > 12 ? std::string(key.substr(0, 12)) + "…" : std::string(key);
}

std::string ExecutionKey::shortForm() const {
  return keyPreview(hex_);
}

Expected<std::string, KeyError> canonicalTemplate(std::string_view argoTemplate) {
  return TemplateCanonicalizer(argoTemplate).run();
}

std::string_view toString(KeyBinding binding) {
  return binding == KeyBinding::kNamespaceBound ? "namespace-bound" : "template-only";
}

Expected<CanonicalTemplate, KeyError> CanonicalTemplate::of(std::string_view argoTemplate) {
  auto canonical = canonicalTemplate(argoTemplate);
  if (!canonical) return Unexpected<KeyError>{canonical.error()};
  return CanonicalTemplate(std::move(*canonical));
}

ExecutionKey CanonicalTemplate::templateOnlyKey() const {
  return ExecutionKey(sha256Hex({bytes_}));
}

ExecutionKey CanonicalTemplate::namespaceBoundKey(std::string_view namespaceName) const {
  // Go's json.Marshal sorts map keys: "namespace" comes before "template".
  const std::string quotedNamespace = goQuoted(namespaceName);
  return ExecutionKey(sha256Hex({kNamespaceBoundPrefix, quotedNamespace, kNamespaceBoundMiddle,
                                 bytes_, kNamespaceBoundSuffix}));
}

ExecutionKey CanonicalTemplate::key(KeyBinding binding, std::string_view namespaceName) const {
  return binding == KeyBinding::kNamespaceBound ? namespaceBoundKey(namespaceName)
                                                : templateOnlyKey();
}

std::string CanonicalTemplate::namespaceBoundBytes(std::string_view namespaceName) const {
  std::string bytes(kNamespaceBoundPrefix);
  gojson::appendQuoted(bytes, namespaceName);
  bytes.append(kNamespaceBoundMiddle).append(bytes_).append(kNamespaceBoundSuffix);
  return bytes;
}

Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view argoTemplate) {
  return computeExecutionKey(argoTemplate, KeyBinding::kTemplateOnly, {});
}

Expected<ExecutionKey, KeyError> computeExecutionKey(std::string_view argoTemplate,
                                                     KeyBinding binding,
                                                     std::string_view namespaceName) {
  auto canonical = CanonicalTemplate::of(argoTemplate);
  if (!canonical) return Unexpected<KeyError>{canonical.error()};
  return canonical->key(binding, namespaceName);
}

}  // namespace kcache::core
