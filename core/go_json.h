#pragma once
// Go encoding/json compatibility: what kcache needs to produce bytes identical to Kubeflow's.
// Written by hand because no JSON library reproduces Go's decoding (invalid UTF-8 replaced byte
// by byte, lone surrogates, float64 numbers, last duplicate key wins) and encoding (HTML
// escaping, U+2028/U+2029, shortest float formatting) exactly; see README "Hand-written parts".
#include <string>
#include <string_view>

namespace kcache::core::gojson {

// Appends `text` (valid UTF-8 expected; invalid bytes are written as \ufffd like Go) as a quoted
// JSON string with Go's escaping: \" \\ \b \f \n \r \t, other controls as \u00xx, < > & as
// \u003c \u003e \u0026, U+2028 and U+2029 escaped.
void appendQuoted(std::string& out, std::string_view text);

// Formats a float64 as Go's encoding/json does ('f' form for 1e-6 <= |x| < 1e21, else 'e' form
// with the shortest round-trip digits).
void appendNumber(std::string& out, double value);

}  // namespace kcache::core::gojson
