// JSON output that never fails on the user's bytes: file and person names are bytes, not always
// UTF-8 (a folder copied from an old Windows share, say), and nlohmann-json refuses to write
// invalid UTF-8 (type_error.316). Human-facing output replaces such bytes with U+FFFD; what
// must round-trip (gallery names) is written reversibly: a valid UTF-8 string as itself, any
// other as {"hex": "..."} of its bytes.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace siamese {

// j.dump(indent), invalid UTF-8 replaced by U+FFFD instead of throwing.
inline std::string dump_json(const nlohmann::json& j, int indent = -1) {
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool is_valid_utf8(const std::string& s);
nlohmann::json bytes_to_json(const std::string& s);
std::string bytes_from_json(const nlohmann::json& j);  // throws DataError on anything else
nlohmann::json strings_to_json(const std::vector<std::string>& v);
std::vector<std::string> strings_from_json(const nlohmann::json& j);  // throws DataError

}  // namespace siamese
