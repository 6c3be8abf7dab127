// Pairs as index pairs into the image bank, sampled exactly as the reference recipe does
// (protocol "tutorial") or with disjoint train/test people (protocol "people").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "siamese/dataset.hpp"

namespace siamese {

struct PairSet {
    std::vector<int32_t> a, b;  // bank indices of the two images
    std::vector<float> label;   // 1 = same person (genuine), 0 = impostor
    long long sampled_from = 0; // > 0: a seeded uniform sample of this many pairs (all_pairs)
    int size() const { return int(a.size()); }
    void push(int32_t i, int32_t j, float y) { a.push_back(i); b.push_back(j); label.push_back(y); }
    void append(const PairSet& o, int first, int count);
    int genuine() const;
};

struct PairSplit {
    PairSet train, val, test;
    std::vector<int> train_people, test_people;  // 0-based; the people protocol only
    std::vector<int> person;                     // person of every bank image (the P-K sampler's groups)
};

// The reference recipe: per person `genuine_per_person` pairs of two different random images;
// `impostor_rounds` rounds over image index j = 0..9 pairing image j of two different random
// people; shuffled 75/25 train/test; the last 25% of train is validation.
PairSplit make_tutorial_pairs(const ImageBank& bank, uint64_t seed, int genuine_per_person = 250,
                              int impostor_rounds = 1000);

// Train on pairs among `train_people` (250 genuine per person, as many impostors, last 25% as
// validation); test on ALL genuine and ALL impostor pairs among `test_people`.
PairSplit make_people_pairs(const ImageBank& bank, const std::vector<int>& train_people,
                            const std::vector<int>& test_people, uint64_t seed, int genuine_per_person = 250);

// The split a command line asks for: protocol "tutorial" or "people"; for "people", the 1-based
// lists of train and test people (empty test: the last quarter; empty train: everyone else).
PairSplit make_split(const ImageBank& bank, const std::string& protocol, const std::string& train_people,
                     const std::string& test_people, uint64_t seed);

// All pairs (i < j) of images of the given people.
// Every pair of images of `people`; beyond max_pairs, a seeded uniform sample of max_pairs of
// them (with sampled_from set to how many there are), so that evaluation over a huge test set
// never holds every pair and its distance at once.
constexpr long long kMaxEvalPairs = 2000000;
PairSet all_pairs(const ImageBank& bank, const std::vector<int>& people, uint64_t seed = 1,
                  long long max_pairs = kMaxEvalPairs);

// The epoch's pair order: the counter-based permutation of (seed, epoch) (siamese/shuffle.hpp),
// so a run can resume at any epoch and the CUDA engine builds the same order on the device.
PairSet epoch_order(const PairSet& train, uint64_t seed, int epoch);

// Parses "1-30", "1,3,5-9" (1-based, inclusive) into sorted 0-based indices < n. Throws
// UsageError for bad syntax, out-of-range or repeated entries; `what` names the option.
std::vector<int> parse_people_list(const std::string& spec, int n, const std::string& what);

}  // namespace siamese
