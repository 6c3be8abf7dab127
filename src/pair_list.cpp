#include "siamese/pair_list.hpp"

#include <algorithm>

#include "siamese/common.hpp"
#include "siamese/files.hpp"

namespace siamese {

namespace {

// Tabs when the line has one (a path may hold spaces), else runs of spaces.
std::vector<std::string> fields_of(const std::string& s) {
    std::vector<std::string> f;
    if (s.find('\t') != std::string::npos) {
        size_t at = 0;
        for (size_t tab; (tab = s.find('\t', at)) != std::string::npos; at = tab + 1) f.push_back(s.substr(at, tab - at));
        f.push_back(s.substr(at));
        return f;
    }
    for (size_t at = s.find_first_not_of(' '); at != std::string::npos; at = s.find_first_not_of(' ', at)) {
        const size_t end = std::min(s.find(' ', at), s.size());
        f.push_back(s.substr(at, end - at));
        at = end;
    }
    return f;
}

int label_of(const std::string& s) {
    if (s == "1" || s == "same") return 1;
    if (s == "0" || s == "different") return 0;
    return -1;
}

}  // namespace

PairList read_pair_list(const std::string& path) { return parse_pair_list(read_file_bytes(path, size_t(1) << 28), path); }

PairList parse_pair_list(const std::string& text, const std::string& path) {
    PairList p;
    bool labelled = false;
    int n = 0;
    for (size_t at = 0; at < text.size();) {
        const size_t nl = std::min(text.find('\n', at), text.size());
        std::string s = text.substr(at, nl - at);
        at = nl + 1;
        ++n;
        if (!s.empty() && s.back() == '\r') s.pop_back();
        const std::string where = path + ":" + std::to_string(n) + ": ";
        if (s.find('\0') != std::string::npos) throw DataError(where + "a NUL byte: not a text file of photo pairs");
        const size_t first = s.find_first_not_of(" \t");
        if (first == std::string::npos || s[first] == '#') continue;
        const std::vector<std::string> f = fields_of(s);
        if (f.size() < 2 || f.size() > 3)
            throw DataError(where + "expected two photo paths and an optional label (1/0 or same/different), found " +
                            std::to_string(f.size()) + " field" + (f.size() == 1 ? "" : "s"));
        if (f[0].empty() || f[1].empty()) throw DataError(where + "an empty photo path");
        if (p.size() == 0) labelled = f.size() == 3;
        if (labelled != (f.size() == 3))
            throw DataError(where + (labelled ? "no label, but the first pair has one: label every pair or none"
                                              : "a label, but the first pair has none: label every pair or none"));
        if (labelled) {
            const int y = label_of(f[2]);
            if (y < 0) throw DataError(where + "label '" + f[2] + "': must be 1, 0, same or different");
            p.label.push_back(y);
        }
        p.first.push_back(f[0]);
        p.second.push_back(f[1]);
        p.line.push_back(n);
    }
    if (p.size() == 0) throw DataError(path + ": no photo pairs (one pair a line: FIRST SECOND [LABEL])");
    return p;
}

}  // namespace siamese
