#include "core/go_json.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/utf8.h"

namespace kcache::core::gojson {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// For each byte: 0 = copy as is, 1 = needs attention (escape, or a multi-byte sequence that may be
// invalid or U+2028/U+2029).
constexpr std::array<uint8_t, 256> makeAttentionTable() {
  std::array<uint8_t, 256> table{};
  for (int c = 0; c < 0x20; ++c) table[c] = 1;
  for (int c = 0x80; c < 0x100; ++c) table[c] = 1;
  table['"'] = table['\\'] = table['<'] = table['>'] = table['&'] = 1;
  return table;
}
constexpr auto kNeedsAttention = makeAttentionTable();

void appendUnicodeEscape(std::string& out, unsigned codeUnit) {
  char buffer[6] = {'\\',
                    'u',
                    kHexDigits[(codeUnit >> 12) & 0xF],
                    kHexDigits[(codeUnit >> 8) & 0xF],
                    kHexDigits[(codeUnit >> 4) & 0xF],
                    kHexDigits[codeUnit & 0xF]};
  out.append(buffer, sizeof buffer);
}

}  // namespace

void appendQuoted(std::string& out, std::string_view text) {
  out.push_back('"');
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t size = text.size();
  size_t runStart = 0;
  size_t i = 0;
  while (i < size) {
    const unsigned char c = bytes[i];
    if (!kNeedsAttention[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t length = utf8::validSequenceLength(bytes + i, size - i);
      if (length == 0) {
        // Go's encoder writes an invalid byte as the escape \ufffd.
        out.append(text.data() + runStart, i - runStart);
        out.append("\\ufffd");
        ++i;
        runStart = i;
        continue;
      }
      if (length == 3 && c == 0xE2 && bytes[i + 1] == 0x80 &&
          (bytes[i + 2] == 0xA8 || bytes[i + 2] == 0xA9)) {
        out.append(text.data() + runStart, i - runStart);
        appendUnicodeEscape(out, bytes[i + 2] == 0xA8 ? 0x2028 : 0x2029);
        i += 3;
        runStart = i;
        continue;
      }
      i += length;
      continue;
    }
    out.append(text.data() + runStart, i - runStart);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:  // other control characters and < > &
        appendUnicodeEscape(out, c);
        break;
    }
    ++i;
    runStart = i;
  }
  out.append(text.data() + runStart, size - runStart);
  out.push_back('"');
}

void appendNumber(std::string& out, double value) {
  if (value == 0) {
    out.append(std::signbit(value) ? "-0" : "0");
    return;
  }
  // Shortest round-trip digits from to_chars' scientific form "d[.ddd]e±XX"; Go's 'f' form is
  // then laid out from the same digits (to_chars' own fixed form would print exact digits of
  // large integers, where Go pads the shortest digits with zeros).
  char scientific[64];
  const auto result = std::to_chars(scientific, scientific + sizeof scientific, value,
                                    std::chars_format::scientific);
  std::string_view text(scientific, static_cast<size_t>(result.ptr - scientific));
  const double magnitude = std::fabs(value);
  if (magnitude < 1e-6 || magnitude >= 1e21) {
    // Go writes at least two exponent digits and then shortens "e-0X" to "e-X" (only negative).
    const size_t n = text.size();
    if (n >= 4 && text[n - 4] == 'e' && text[n - 3] == '-' && text[n - 2] == '0') {
      out.append(text.substr(0, n - 2));
      out.push_back(text[n - 1]);
    } else {
      out.append(text);
    }
    return;
  }

  bool negative = false;
  if (text.front() == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  const size_t ePos = text.find('e');
  int exponent = 0;
  std::from_chars(text.data() + ePos + 1 + (text[ePos + 1] == '+' ? 1 : 0),
                  text.data() + text.size(), exponent);
  char digits[32];
  size_t digitCount = 0;
  for (size_t k = 0; k < ePos; ++k) {
    if (text[k] != '.') digits[digitCount++] = text[k];
  }
  if (negative) out.push_back('-');
  // value = 0.d1d2...dn * 10^(exponent + 1)
  const int pointPosition = exponent + 1;
  if (pointPosition <= 0) {
    out.append("0.");
    out.append(static_cast<size_t>(-pointPosition), '0');
    out.append(digits, digitCount);
  } else if (static_cast<size_t>(pointPosition) >= digitCount) {
    out.append(digits, digitCount);
    out.append(static_cast<size_t>(pointPosition) - digitCount, '0');
  } else {
    out.append(digits, static_cast<size_t>(pointPosition));
    out.push_back('.');
    out.append(digits + pointPosition, digitCount - static_cast<size_t>(pointPosition));
  }
}

}  // namespace kcache::core::gojson
