// spdlog is used as the compiled shared library (as its CMake target would configure it), so the
// binaries that call configureLogging link spdlog::spdlog; core itself stays free of the
// dependency (core is configured before spdlog is found).
#ifndef SPDLOG_COMPILED_LIB
#define SPDLOG_COMPILED_LIB
#endif
#ifndef SPDLOG_SHARED_LIB
#define SPDLOG_SHARED_LIB
#endif
#ifndef SPDLOG_FMT_EXTERNAL
#define SPDLOG_FMT_EXTERNAL
#endif

#include "core/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <stdexcept>
#include <utility>

#include "core/utf8.h"

namespace kcache::core {

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

constexpr char kHex[] = "0123456789abcdef";

// How a piece of text is escaped: as a value inside a text line (quotes and backslashes too, so
// a value cannot fake the end of a quoted field), as a whole text line (only what could break
// the line or drive a terminal), or as the inside of a JSON string.
enum class Escaping { kValue, kTextLine, kJson };

// Code points that move a terminal or reorder what a reader sees: C1 controls (U+0080-U+009F,
// among them the one-byte CSI) and the bidirectional embeddings, overrides and isolates.
bool isHiddenControl(uint32_t codePoint) {
  return (codePoint >= 0x80 && codePoint <= 0x9F) || (codePoint >= 0x202A && codePoint <= 0x202E) ||
         (codePoint >= 0x2066 && codePoint <= 0x2069);
}

uint32_t decode(const unsigned char* bytes, std::size_t length) {
  if (length == 1) return bytes[0];
  if (length == 2) return (uint32_t{bytes[0]} & 0x1F) << 6 | (bytes[1] & 0x3F);
  if (length == 3) {
    return (uint32_t{bytes[0]} & 0x0F) << 12 | (uint32_t{bytes[1]} & 0x3F) << 6 | (bytes[2] & 0x3F);
  }
  return (uint32_t{bytes[0]} & 0x07) << 18 | (uint32_t{bytes[1]} & 0x3F) << 12 |
         (uint32_t{bytes[2]} & 0x3F) << 6 | (bytes[3] & 0x3F);
}

template <typename Out>
void appendText(Out& out, std::string_view text) {
  out.append(text.data(), text.data() + text.size());
}

template <typename Out>
void appendUnicodeEscape(Out& out, uint32_t codePoint) {
  const char escaped[] = {'\\',
                          'u',
                          kHex[(codePoint >> 12) & 0xF],
                          kHex[(codePoint >> 8) & 0xF],
                          kHex[(codePoint >> 4) & 0xF],
                          kHex[codePoint & 0xF]};
  out.append(escaped, escaped + sizeof(escaped));
}

template <typename Out>
void appendByteEscape(Out& out, unsigned char byte) {
  const char escaped[] = {'\\', 'x', kHex[byte >> 4], kHex[byte & 0xF]};
  out.append(escaped, escaped + sizeof(escaped));
}

// Appends `text` escaped; returns the number of input bytes consumed, which is less than
// text.size() only when `maxInputBytes` stopped it (always at a character boundary).
template <typename Out>
std::size_t appendEscaped(Out& out, std::string_view text, Escaping escaping,
                          std::size_t maxInputBytes) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const bool json = escaping == Escaping::kJson;
  const bool quoted = escaping != Escaping::kTextLine;
  std::size_t index = 0;
  while (index < text.size()) {
    const std::size_t length = utf8::validSequenceLength(bytes + index, text.size() - index);
    const std::size_t consumed = length == 0 ? 1 : length;
    if (index + consumed > maxInputBytes) break;
    const unsigned char byte = bytes[index];
    if (length == 0) {
      // Not UTF-8: JSON must stay valid UTF-8; text shows the byte.
      if (json) {
        appendUnicodeEscape(out, utf8::kReplacementCharacter);
      } else {
        appendByteEscape(out, byte);
      }
    } else if (length == 1) {
      switch (byte) {
        case '\n':
          appendText(out, "\\n");
          break;
        case '\r':
          appendText(out, "\\r");
          break;
        case '\t':
          appendText(out, "\\t");
          break;
        case '"':
        case '\\':
          if (quoted) out.push_back('\\');
          out.push_back(static_cast<char>(byte));
          break;
        default:
          if (byte < 0x20 || byte == 0x7F) {
            if (json) {
              appendUnicodeEscape(out, byte);
            } else {
              appendByteEscape(out, byte);
            }
          } else {
            out.push_back(static_cast<char>(byte));
          }
      }
    } else if (const uint32_t codePoint = decode(bytes + index, length);
               isHiddenControl(codePoint)) {
      appendUnicodeEscape(out, codePoint);
    } else {
      out.append(text.data() + index, text.data() + index + length);
    }
    index += consumed;
  }
  return index;
}

template <typename Out>
void appendCutNote(Out& out, std::size_t leftOut) {
  appendText(out, "…(+");
  appendText(out, std::to_string(leftOut));
  appendText(out, " bytes)");
}

// Writes the message escaped for its format and cut at kMaxLogMessageBytes, so whatever a
// message carries, the line stays one line (and, for JSON, one valid JSON object).
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  explicit EscapedMessage(Escaping escaping) : escaping_(escaping) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const auto written = appendEscaped(dest, payload, escaping_, kMaxLogMessageBytes);
    if (written < payload.size()) appendCutNote(dest, payload.size() - written);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>(escaping_);
  }

 private:
  Escaping escaping_;
};

spdlog::level::level_enum parseLevel(const std::string& level) {
  const auto name = lower(level);
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn" || name == "warning") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  throw std::invalid_argument("unknown log level \"" + level +
                              "\" (expected trace, debug, info, warn, error, critical or off)");
}

}  // namespace

std::string logValue(std::string_view value, std::size_t maxBytes) {
  std::string out;
  out.reserve(std::min(value.size(), maxBytes) + 16);
  const auto written = appendEscaped(out, value, Escaping::kValue, maxBytes);
  if (written < value.size()) appendCutNote(out, value.size() - written);
  return out;
}

LogRateLimiter::LogRateLimiter(std::size_t burst, std::chrono::milliseconds window, Clock clock)
    : burst_(burst),
      window_(window),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

std::optional<std::uint64_t> LogRateLimiter::admit() {
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  if (inWindow_ == 0 || now - windowStart_ >= window_) {
    windowStart_ = now;
    inWindow_ = 0;
  }
  if (inWindow_ >= burst_) {
    ++suppressed_;
    return std::nullopt;
  }
  ++inWindow_;
  return std::exchange(suppressed_, 0);
}

std::string LogRateLimiter::suppressedNote(std::uint64_t suppressed) {
  if (suppressed == 0) return {};
  return " (" + std::to_string(suppressed) + " similar messages suppressed)";
}

LogFormat parseLogFormat(const std::string& text) {
  const auto name = lower(text);
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  throw std::invalid_argument("unknown log format \"" + text + "\" (expected text or json)");
}

void configureLogging(LogFormat format, const std::string& level) {
  const auto parsedLevel = parseLevel(level);
  auto logger =
      std::make_shared<spdlog::logger>("kcache", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc,
                                                               std::string("\n"));
  if (format == LogFormat::kJson) {
    formatter->add_flag<EscapedMessage>('*', Escaping::kJson)
        .set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})");
  } else {
    formatter->add_flag<EscapedMessage>('*', Escaping::kTextLine)
        .set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %*");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(parsedLevel);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace kcache::core
