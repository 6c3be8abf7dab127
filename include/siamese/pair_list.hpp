// A list of photo pairs to verify (`siamese verify --pairs FILE`): one pair a line, optionally
// labelled, so that a user's own protocol (an LFW-style pairs file, the pairs a door camera
// saw) is scored and rated in one run instead of one process a pair.
#pragma once
#include <string>
#include <vector>

namespace siamese {

struct PairList {
    std::vector<std::string> first, second;
    std::vector<int> label;  // 1 same person, 0 different; empty when the file has no labels
    std::vector<int> line;   // the line of each pair in the file (1-based), for messages
    int size() const { return int(first.size()); }
};

// Reads FILE: per line two photo paths and an optional label (1/0 or same/different). Fields
// are separated by tabs when the line has one (paths with spaces), else by runs of spaces. Blank
// lines and lines starting with '#' are skipped; CRLF is accepted. Paths are returned as written
// (verify takes relative ones from the current folder, or --root). Either every pair is labelled
// or none.
// Throws DataError naming FILE:LINE and the fault (no pairs at all is a fault too).
PairList read_pair_list(const std::string& path);
// The same from the file's bytes; `name` stands for the file in messages.
PairList parse_pair_list(const std::string& text, const std::string& name);

}  // namespace siamese
