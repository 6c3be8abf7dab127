#include "siamese/pairs.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <set>

#include "siamese/common.hpp"
#include "siamese/shuffle.hpp"

namespace siamese {

void PairSet::append(const PairSet& o, int first, int count) {
    for (int i = first; i < first + count; ++i) push(o.a[i], o.b[i], o.label[i]);
}

int PairSet::genuine() const {
    int n = 0;
    for (float y : label) n += y > 0.5f;
    return n;
}

namespace {

// Genuine pairs for each listed person: two different random images (people with one image
// have no genuine pair and are left out, with a warning).
void add_genuine(PairSet& out, const ImageBank& bank, const std::vector<int>& people, int per_person, Rng& r) {
    for (int p : people) {
        const auto& imgs = bank.images_of[p];
        if (imgs.size() < 2) {
            std::fprintf(stderr, "warning: person %s has only one image: no genuine pair, left out of genuine pairs\n",
                         bank.people[p].c_str());
            continue;
        }
        for (int k = 0; k < per_person; ++k) {
            uint64_t i1 = 0, i2 = 0;
            while (i1 == i2) {
                i1 = r.below(imgs.size());
                i2 = r.below(imgs.size());
            }
            out.push(imgs[i1], imgs[i2], 1.0f);
        }
    }
}

// Splits `all` after shuffling: the first 75% train (of which the last 25% validation), the
// rest test (train_test_split(test_size=.25) then validation_split=.25, as in the recipe).
void split_shuffled(const PairSet& all, Rng& r, double test_fraction, PairSplit& out) {
    std::vector<int> order(all.size());
    std::iota(order.begin(), order.end(), 0);
    r.shuffle(order);
    const int n_test = int(all.size() * test_fraction + 0.5);
    const int n_trainval = all.size() - n_test;
    const int n_val = int(n_trainval * 0.25 + 0.5);
    const int n_train = n_trainval - n_val;
    for (int k = 0; k < all.size(); ++k) {
        PairSet& dst = k < n_train ? out.train : k < n_trainval ? out.val : out.test;
        dst.push(all.a[order[k]], all.b[order[k]], all.label[order[k]]);
    }
}

}  // namespace

PairSplit make_tutorial_pairs(const ImageBank& bank, uint64_t seed, int genuine_per_person, int impostor_rounds) {
    const int n_people = int(bank.people.size());
    if (n_people < 2) throw DataError("the dataset has fewer than two people: no impostor pair possible");
    Rng r(seed);
    PairSet all;
    std::vector<int> everyone(n_people);
    std::iota(everyone.begin(), everyone.end(), 0);
    add_genuine(all, bank, everyone, genuine_per_person, r);
    if (all.size() == 0) throw DataError("no person has two images: no genuine pair possible");
    for (int round = 0; round < impostor_rounds; ++round) {
        for (int j = 0; j < 10; ++j) {
            uint64_t p1 = 0, p2 = 0;
            while (p1 == p2) {
                p1 = r.below(n_people);
                p2 = r.below(n_people);
            }
            const auto& i1 = bank.images_of[p1];
            const auto& i2 = bank.images_of[p2];
            all.push(i1[j % i1.size()], i2[j % i2.size()], 0.0f);
        }
    }
    PairSplit out;
    split_shuffled(all, r, 0.25, out);
    out.person = bank.person;
    return out;
}

PairSet all_pairs(const ImageBank& bank, const std::vector<int>& people, uint64_t seed, long long max_pairs) {
    std::vector<int> imgs;
    for (int p : people) imgs.insert(imgs.end(), bank.images_of[p].begin(), bank.images_of[p].end());
    const long long n = (long long)imgs.size(), total = n * (n - 1) / 2;
    PairSet s;
    if (total <= max_pairs) {
        for (size_t i = 0; i < imgs.size(); ++i)
            for (size_t j = i + 1; j < imgs.size(); ++j)
                s.push(imgs[i], imgs[j], bank.person[imgs[i]] == bank.person[imgs[j]] ? 1.0f : 0.0f);
        return s;
    }
    // Uniform over unordered pairs (with replacement: repeats are rare at this size and do not
    // bias the rates); the class mix is that of all pairs, so AUC and EER stay unbiased.
    Rng r(seed ^ 0xA11FA125ull);
    for (long long k = 0; k < max_pairs; ++k) {
        const int i = int(r.below(uint64_t(n)));
        int j = int(r.below(uint64_t(n - 1)));
        if (j >= i) ++j;
        s.push(imgs[size_t(std::min(i, j))], imgs[size_t(std::max(i, j))],
               bank.person[imgs[size_t(i)]] == bank.person[imgs[size_t(j)]] ? 1.0f : 0.0f);
    }
    s.sampled_from = total;
    return s;
}

PairSplit make_people_pairs(const ImageBank& bank, const std::vector<int>& train_people,
                            const std::vector<int>& test_people, uint64_t seed, int genuine_per_person) {
    if (train_people.size() < 2) throw UsageError("--train-people must name at least two people");
    if (test_people.size() < 2) throw UsageError("--test-people must name at least two people");
    for (int p : train_people)
        if (std::find(test_people.begin(), test_people.end(), p) != test_people.end())
            throw UsageError("--train-people and --test-people overlap (person " + std::to_string(p + 1) + ")");
    Rng r(seed);
    PairSet all;
    add_genuine(all, bank, train_people, genuine_per_person, r);
    if (all.size() == 0) throw DataError("no training person has two images: no genuine pair possible");
    const int n_imp = all.size();
    for (int k = 0; k < n_imp; ++k) {
        uint64_t p1 = 0, p2 = 0;
        while (p1 == p2) {
            p1 = r.below(train_people.size());
            p2 = r.below(train_people.size());
        }
        const auto& i1 = bank.images_of[train_people[p1]];
        const auto& i2 = bank.images_of[train_people[p2]];
        all.push(i1[r.below(i1.size())], i2[r.below(i2.size())], 0.0f);
    }
    PairSplit out;
    split_shuffled(all, r, 0.0, out);
    out.test = all_pairs(bank, test_people, seed);
    out.train_people = train_people;
    out.test_people = test_people;
    out.person = bank.person;
    return out;
}

PairSplit make_split(const ImageBank& bank, const std::string& protocol, const std::string& train_people,
                     const std::string& test_people, uint64_t seed) {
    const int n = int(bank.people.size());
    if (n < 2) throw DataError("the dataset has fewer than two people");
    if (protocol == "tutorial") {
        if (!train_people.empty() || !test_people.empty())
            throw UsageError("--train-people/--test-people need --protocol people");
        return make_tutorial_pairs(bank, seed);
    }
    if (protocol != "people") throw UsageError("--protocol must be tutorial or people");
    const std::vector<int> test =
        test_people.empty()
            ? parse_people_list(std::to_string(n - std::max(2, n / 4) + 1) + "-" + std::to_string(n), n, "--test-people")
            : parse_people_list(test_people, n, "--test-people");
    std::vector<int> train;
    if (train_people.empty()) {
        for (int p = 0; p < n; ++p)
            if (std::find(test.begin(), test.end(), p) == test.end()) train.push_back(p);
    } else {
        train = parse_people_list(train_people, n, "--train-people");
    }
    return make_people_pairs(bank, train, test, seed);
}

std::vector<int> parse_people_list(const std::string& spec, int n, const std::string& what) {
    std::set<int> seen;
    std::vector<int> out;
    size_t pos = 0;
    auto bad = [&](const std::string& why) -> UsageError {
        return UsageError(what + " '" + spec + "': " + why);
    };
    auto read_int = [&](size_t& p) {
        if (p >= spec.size() || !std::isdigit(static_cast<unsigned char>(spec[p]))) throw bad("expected a number");
        long v = 0;
        while (p < spec.size() && std::isdigit(static_cast<unsigned char>(spec[p]))) {
            v = v * 10 + (spec[p++] - '0');
            if (v > 1000000000) throw bad("number too large");
        }
        return int(v);
    };
    if (spec.empty()) throw bad("empty list");
    while (pos < spec.size()) {
        const int lo = read_int(pos);
        int hi = lo;
        if (pos < spec.size() && spec[pos] == '-') {
            ++pos;
            hi = read_int(pos);
        }
        if (lo < 1 || hi > n) throw bad("person out of range 1.." + std::to_string(n));
        if (hi < lo) throw bad("range " + std::to_string(lo) + "-" + std::to_string(hi) + " is backwards");
        for (int p = lo; p <= hi; ++p) {
            if (!seen.insert(p).second) throw bad("person " + std::to_string(p) + " listed twice");
            out.push_back(p - 1);
        }
        if (pos < spec.size()) {
            if (spec[pos] != ',') throw bad("expected ',' or '-'");
            ++pos;
            if (pos == spec.size()) throw bad("trailing ','");
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

PairSet epoch_order(const PairSet& train, uint64_t seed, int epoch) {
    const ShuffleKey key = shuffle_key(seed, epoch, uint32_t(train.size()));
    PairSet out;
    for (int i = 0; i < train.size(); ++i) {
        const uint32_t j = shuffle_index(key, uint32_t(i));
        out.push(train.a[j], train.b[j], train.label[j]);
    }
    return out;
}

}  // namespace siamese
