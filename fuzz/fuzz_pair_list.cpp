// libFuzzer target: a `verify --pairs` list must be refused with a DataError naming its line, or
// parsed consistently: as many first as second paths and lines, none empty, lines rising, labels
// 0/1 for every pair or for none, no path holding a line break.
#include <cstddef>
#include <cstdint>
#include <string>

#include "siamese/common.hpp"
#include "siamese/pair_list.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        const siamese::PairList p = siamese::parse_pair_list(text, "fuzz.txt");
        const size_t n = p.first.size();
        if (n == 0 || p.second.size() != n || p.line.size() != n) __builtin_trap();
        if (!p.label.empty() && p.label.size() != n) __builtin_trap();
        for (int y : p.label)
            if (y != 0 && y != 1) __builtin_trap();
        for (size_t i = 0; i < n; ++i) {
            if (p.first[i].empty() || p.second[i].empty()) __builtin_trap();
            if ((p.first[i] + p.second[i]).find('\n') != std::string::npos) __builtin_trap();
            if (i > 0 && p.line[i] <= p.line[i - 1]) __builtin_trap();
        }
    } catch (const siamese::DataError&) {
    }
    return 0;
}
