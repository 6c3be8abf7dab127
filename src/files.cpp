// Whole-file reads, crash-safe writes and the checksum every file this program writes carries.
#include "siamese/files.hpp"

#include "siamese/jsonio.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "siamese/common.hpp"

namespace siamese {

uint64_t regular_file_size(const std::string& path) {
    // Regular files only (after following links): a FIFO or a device would block or never end.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw DataError(path + ": cannot open file (" + std::strerror(errno) + ")");
    if (!S_ISREG(st.st_mode)) throw DataError(path + ": not a regular file (a folder, FIFO or device)");
    return uint64_t(st.st_size);
}

std::string read_file_bytes(const std::string& path, size_t max_bytes) {
    const uint64_t size = regular_file_size(path);
    if (size > max_bytes)
        throw DataError(path + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) +
                        " its header allows (trailing data, or not what it claims to be)");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw DataError(path + ": cannot open file");
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) throw DataError(path + ": read error");
    return ss.str();
}


void write_file_atomic(const std::string& path, const std::string& bytes) {
    write_file_atomic(path, std::vector<ByteSpan>{{bytes.data(), bytes.size()}});
}

void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& pieces) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw DataError(path + ": cannot create file (" + std::strerror(errno) + ")");
    for (const ByteSpan& piece : pieces) {
        size_t done = 0;
        while (done < piece.size) {
            const ssize_t w = ::write(fd, piece.data + done, piece.size - done);
            if (w < 0) {
                if (errno == EINTR) continue;
                const std::string err = std::strerror(errno);
                ::close(fd);
                ::unlink(tmp.c_str());
                throw DataError(path + ": write failed (" + err + ")");
            }
            done += size_t(w);
        }
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        throw DataError(path + ": cannot flush file to disk");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        throw DataError(path + ": cannot rename temporary file into place");
    }
}

uint64_t fnv1a64(uint64_t h, const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        h ^= static_cast<unsigned char>(data[i]);
        h *= 0x100000001B3ull;
    }
    return h;
}

std::string hex64(uint64_t h) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::string fnv1a64_hex(const char* data, size_t n) { return hex64(fnv1a64(kFnv1a64Offset, data, n)); }

bool parse_finite(const std::string& s, double* out) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return false;
    *out = v;
    return true;
}

bool parse_int_in(const std::string& s, long lo, long hi, long* out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("-0123456789") != std::string::npos) return false;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (end != s.c_str() + s.size() || errno == ERANGE || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool is_valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (len == 0 || i + size_t(len) > s.size()) return false;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (int k = 1; k < len; ++k) {
            const unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
            if ((d >> 6) != 0x2) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are invalid too.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += size_t(len);
    }
    return true;
}

nlohmann::json bytes_to_json(const std::string& s) {
    if (is_valid_utf8(s)) return s;
    static const char* hex = "0123456789abcdef";
    std::string h;
    for (unsigned char c : s) {
        h.push_back(hex[c >> 4]);
        h.push_back(hex[c & 15]);
    }
    return nlohmann::json{{"hex", h}};
}

std::string bytes_from_json(const nlohmann::json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (!j.is_object() || !j.contains("hex") || !j.at("hex").is_string()) throw DataError("a name is neither text nor hex bytes");
    const std::string h = j.at("hex").get<std::string>();
    if (h.size() % 2) throw DataError("a name's hex bytes have odd length");
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        throw DataError("a name's hex bytes are not hex");
    };
    std::string s;
    for (size_t i = 0; i < h.size(); i += 2) s.push_back(char(nib(h[i]) * 16 + nib(h[i + 1])));
    return s;
}

nlohmann::json strings_to_json(const std::vector<std::string>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& s : v) a.push_back(bytes_to_json(s));
    return a;
}

std::vector<std::string> strings_from_json(const nlohmann::json& j) {
    if (!j.is_array()) throw DataError("expected a list of names");
    std::vector<std::string> v;
    for (const auto& e : j) v.push_back(bytes_from_json(e));
    return v;
}

}  // namespace siamese
