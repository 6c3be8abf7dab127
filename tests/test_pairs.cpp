#include <catch2/catch.hpp>
#include <cmath>
#include <set>

#include "siamese/common.hpp"
#include "siamese/pair_list.hpp"
#include "siamese/pairs.hpp"
#include "siamese/shuffle.hpp"
#include "siamese/synth.hpp"
#include "test_util.hpp"

using namespace siamese;

namespace {
// A bank of n_people x n_images tiny images (pixel content irrelevant to pair sampling).
ImageBank tiny_bank(int n_people, int n_images) {
    ImageBank b;
    PgmImage img;
    img.width = img.height = 4;
    img.maxval = 255;
    img.samples.assign(16, 0);
    Preprocess pp;
    pp.downsample = 1;
    for (int p = 0; p < n_people; ++p) {
        b.people.push_back("s" + std::to_string(p + 1));
        for (int i = 0; i < n_images; ++i) b.add(img, p, "f", pp);
    }
    return b;
}
bool same_pairs(const PairSet& x, const PairSet& y) { return x.a == y.a && x.b == y.b && x.label == y.label; }
}  // namespace

TEST_CASE("tutorial protocol: the reference recipe's counts, balance and split", "[pairs]") {
    const ImageBank bank = tiny_bank(40, 10);
    const PairSplit s = make_tutorial_pairs(bank, 7);
    CHECK(s.train.size() == 11250);
    CHECK(s.val.size() == 3750);
    CHECK(s.test.size() == 5000);
    CHECK(s.train.genuine() + s.val.genuine() + s.test.genuine() == 10000);
    // Roughly balanced in each part after the shuffle (binomial sd ~ 0.4% of 15000).
    CHECK(std::abs(double(s.test.genuine()) / s.test.size() - 0.5) < 0.05);
    for (const PairSet* ps : {&s.train, &s.val, &s.test})
        for (int i = 0; i < ps->size(); ++i) {
            const bool same = bank.person[ps->a[i]] == bank.person[ps->b[i]];
            CHECK(same == (ps->label[i] == 1.0f));
            if (ps->label[i] == 1.0f) CHECK(ps->a[i] != ps->b[i]);  // never an image with itself
        }
    // Impostor pairs use the same image index j for both people, as the recipe does.
    for (int i = 0; i < s.test.size(); ++i)
        if (s.test.label[i] == 0.0f) CHECK(s.test.a[i] % 10 == s.test.b[i] % 10);
}

TEST_CASE("same seed gives the same pairs, another seed other pairs", "[pairs]") {
    const ImageBank bank = tiny_bank(40, 10);
    CHECK(same_pairs(make_tutorial_pairs(bank, 3).train, make_tutorial_pairs(bank, 3).train));
    CHECK_FALSE(same_pairs(make_tutorial_pairs(bank, 3).train, make_tutorial_pairs(bank, 4).train));
    const auto tr = parse_people_list("1-30", 40, "t"), te = parse_people_list("31-40", 40, "t");
    CHECK(same_pairs(make_people_pairs(bank, tr, te, 5).val, make_people_pairs(bank, tr, te, 5).val));
}

TEST_CASE("people protocol: disjoint people, all test pairs", "[pairs]") {
    const ImageBank bank = tiny_bank(40, 10);
    const auto tr = parse_people_list("1-30", 40, "t"), te = parse_people_list("31-40", 40, "t");
    const PairSplit s = make_people_pairs(bank, tr, te, 1);
    CHECK(s.train.size() + s.val.size() == 2 * 250 * 30);
    CHECK(s.val.size() == 3750);
    CHECK(s.train.genuine() + s.val.genuine() == 7500);
    for (const PairSet* ps : {&s.train, &s.val})
        for (int i = 0; i < ps->size(); ++i) {
            CHECK(bank.person[ps->a[i]] < 30);
            CHECK(bank.person[ps->b[i]] < 30);
            CHECK((bank.person[ps->a[i]] == bank.person[ps->b[i]]) == (ps->label[i] == 1.0f));
        }
    // Every pair of the 100 test images: 4950, of which 10 * 45 genuine.
    CHECK(s.test.size() == 4950);
    CHECK(s.test.genuine() == 450);
    for (int i = 0; i < s.test.size(); ++i) CHECK(bank.person[s.test.a[i]] >= 30);
    CHECK_THROWS_AS(make_people_pairs(bank, tr, parse_people_list("30-40", 40, "t"), 1), UsageError);
}

TEST_CASE("a person with one image has no genuine pairs", "[pairs]") {
    ImageBank bank = tiny_bank(3, 3);
    PgmImage img;
    img.width = img.height = 4;
    img.maxval = 255;
    img.samples.assign(16, 0);
    Preprocess pp;
    pp.downsample = 1;
    bank.people.push_back("lonely");
    bank.add(img, 3, "f", pp);
    const PairSplit s = make_tutorial_pairs(bank, 1, 10, 10);
    for (const PairSet* ps : {&s.train, &s.val, &s.test})
        for (int i = 0; i < ps->size(); ++i)
            if (ps->label[i] == 1.0f) CHECK(bank.person[ps->a[i]] != 3);
    CHECK(s.train.genuine() + s.val.genuine() + s.test.genuine() == 30);
}

TEST_CASE("people lists: ranges, lists and their errors", "[pairs]") {
    CHECK(parse_people_list("1-3", 10, "x") == std::vector<int>{0, 1, 2});
    CHECK(parse_people_list("1,3,5-7", 10, "x") == std::vector<int>{0, 2, 4, 5, 6});
    CHECK(parse_people_list("10", 10, "x") == std::vector<int>{9});
    for (const char* bad : {"", "0", "11", "1-11", "3-1", "1,,2", "1,", "a", "1-2,2", "1;2", "-3"})
        CHECK_THROWS_AS(parse_people_list(bad, 10, "x"), UsageError);
}

TEST_CASE("all pairs of a huge test set are a bounded, seeded, unbiased sample, said so", "[pairs]") {
    // 10,000 images of 100 people: 49,995,000 pairs, more than evaluation holds at once.
    ImageBank bank;
    for (int p = 0; p < 100; ++p) {
        bank.images_of.emplace_back();
        for (int k = 0; k < 100; ++k) {
            bank.images_of.back().push_back(bank.size());
            bank.person.push_back(p);
        }
    }
    std::vector<int> people(100);
    for (int p = 0; p < 100; ++p) people[p] = p;
    const PairSet s = all_pairs(bank, people, 3, 200000);
    CHECK(s.size() == 200000);
    CHECK(s.sampled_from == 49995000LL);
    // Genuine share of all pairs: 100 * C(100,2) / C(10000,2) = 0.0099; a 200,000-pair sample
    // has a standard deviation of about 0.0002 around it.
    CHECK(double(s.genuine()) / s.size() == Approx(0.0099).margin(0.001));
    for (int i = 0; i < s.size(); ++i) REQUIRE(s.a[i] < s.b[i]);
    const PairSet t = all_pairs(bank, people, 3, 200000);
    CHECK(t.a == s.a);  // seeded
    const PairSet small = all_pairs(bank, {0, 1}, 3, 200000);
    CHECK(small.sampled_from == 0);  // all of them when they fit
    CHECK(small.size() == 200 * 199 / 2);
}

TEST_CASE("the epoch shuffle is a bijection of 0..n-1 for every n, near the Feistel domain's edges too", "[pairs][shuffle]") {
    // Domains are 4^h: 4, 16, 64, ..., 16384 (the reference recipe's 11,250), 65536.
    for (uint32_t n : {1u, 2u, 3u, 4u, 5u, 15u, 16u, 17u, 257u, 4096u, 4097u, 11250u, 16384u, 16385u}) {
        const ShuffleKey k = shuffle_key(9, 2, n);
        CHECK((uint64_t(1) << (2 * k.half)) >= n);
        CHECK((k.half == 1 || (uint64_t(1) << (2 * k.half)) < 4ull * n));  // at most 4n: short walks
        std::vector<char> hit(n, 0);
        for (uint32_t i = 0; i < n; ++i) {
            const uint32_t j = shuffle_index(k, i);
            REQUIRE(j < n);
            CHECK_FALSE(hit[j]);
            hit[j] = 1;
        }
    }
}

TEST_CASE("the epoch an epoch graph derives from its step is the trainer's", "[pairs][shuffle]") {
    // The trainer's epoch e (1-based) of B steps begins at step (e - 1) * B.
    for (int B : {1, 3, 88})
        for (int e = 1; e <= 20; ++e) {
            CHECK(epoch_at_step(uint64_t(e - 1) * uint64_t(B), B) == e);
            CHECK(epoch_at_step(uint64_t(e) * uint64_t(B) - 1, B) == e);  // its last step
        }
}

TEST_CASE("the epoch order is a permutation of the training pairs, seeded by (seed, epoch)", "[pairs][shuffle]") {
    PairSet train;
    for (int i = 0; i < 1000; ++i) train.push(i, 1000 + i, float(i % 2));
    const PairSet o = epoch_order(train, 5, 3);
    REQUIRE(o.size() == train.size());
    std::set<int> seen;
    int moved = 0;
    for (int i = 0; i < o.size(); ++i) {
        const int j = o.a[i];  // the pair's own index
        CHECK(o.b[i] == 1000 + j);
        CHECK(o.label[i] == float(j % 2));
        seen.insert(j);
        moved += j != i;
    }
    CHECK(int(seen.size()) == train.size());
    CHECK(moved > 990);  // a shuffle, not the identity: ~1 fixed point expected
    CHECK(epoch_order(train, 5, 3).a == o.a);
    CHECK(epoch_order(train, 5, 4).a != o.a);
    CHECK(epoch_order(train, 6, 3).a != o.a);
}

TEST_CASE("the epoch shuffle sends every position anywhere with equal chance", "[pairs][shuffle]") {
    // Over 24,000 epochs each position's landing place is counted; chi-square per position
    // against uniform. Thresholds: the 1e-6 tail of chi-square with n-1 degrees of freedom
    // (33.4 for 4, 45.9 for 9; Wilson-Hilferty), so a fair rule fails about once in 10^5 runs
    // (the inputs are fixed: it passes or fails the same way every run). A 6-round network was
    // measured to fail at n = 5 (45.1): tiny Feistel domains need the 12 rounds.
    const int K = 24000;
    for (const auto& [n, limit] : {std::pair<uint32_t, double>{5, 33.4}, {10, 45.9}}) {
        std::vector<std::vector<int>> count(n, std::vector<int>(n, 0));
        for (int e = 0; e < K; ++e) {
            const ShuffleKey k = shuffle_key(7, e, n);
            for (uint32_t i = 0; i < n; ++i) ++count[i][shuffle_index(k, i)];
        }
        const double expect = double(K) / n;
        for (uint32_t i = 0; i < n; ++i) {
            double chi2 = 0;
            for (uint32_t j = 0; j < n; ++j) chi2 += (count[i][j] - expect) * (count[i][j] - expect) / expect;
            INFO("n " << n << " position " << i);
            CHECK(chi2 < limit);
        }
    }
    // Neighbours do not stay neighbours: position i+1 holds the successor of position i's pair
    // with chance 1/n. 20,000 epochs of 64: ~19,700 such events, Poisson sd ~140; 5 sd allowed.
    long follow = 0;
    for (int e = 0; e < 20000; ++e) {
        const ShuffleKey k = shuffle_key(11, e, 64);
        for (uint32_t i = 1; i < 64; ++i) follow += shuffle_index(k, i) == shuffle_index(k, i - 1) + 1;
    }
    const double expect = 20000.0 * 63 / 64;
    CHECK(std::abs(double(follow) - expect) < 5 * std::sqrt(expect));
}

TEST_CASE("a pair list: tabs or spaces, labels as 1/0 or same/different, comments, CRLF, errors naming the line", "[pairs][cli]") {
    const std::string dir = testutil::temp_dir("pair_list");
    const std::string f = dir + "/pairs.txt";
    testutil::write_bytes(f, "# a comment\n\n  \na.pgm b.pgm 1\r\nmy photos/c.png\td.jpg\tdifferent\n   e.pgm   f.pgm   same\n"
                             "a.pgm a\tb.pgm\t0");
    const PairList p = read_pair_list(f);
    REQUIRE(p.size() == 4);
    CHECK(p.first == std::vector<std::string>{"a.pgm", "my photos/c.png", "e.pgm", "a.pgm a"});
    CHECK(p.second == std::vector<std::string>{"b.pgm", "d.jpg", "f.pgm", "b.pgm"});
    CHECK(p.label == std::vector<int>{1, 0, 1, 0});
    CHECK(p.line == std::vector<int>{4, 5, 6, 7});
    testutil::write_bytes(f, "a.pgm b.pgm\nc.pgm d.pgm\n");
    const PairList u = read_pair_list(f);
    CHECK(u.size() == 2);
    CHECK(u.label.empty());
    // Each fault names the file and its line.
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"a.pgm b.pgm 1\nc.pgm d.pgm\n", "pairs.txt:2: no label"},
        {"a.pgm b.pgm\nc.pgm d.pgm 0\n", "pairs.txt:2: a label"},
        {"# x\na.pgm b.pgm yes\n", "pairs.txt:2: label 'yes'"},
        {"a.pgm\n", "pairs.txt:1: expected two photo paths"},
        {"a b c d\n", "found 4 fields"},
        {"a.pgm\t\t1\n", "pairs.txt:1: an empty photo path"},
        {std::string("a.pgm b.pgm\nx\0y z\n", 18), "pairs.txt:2: a NUL byte"},
        {"# only comments\n\n", "pairs.txt: no photo pairs"},
        {"", "no photo pairs"},
    };
    for (const auto& [text, expect] : bad) {
        testutil::write_bytes(f, text);
        const std::string msg = testutil::expect_data_error([&] { read_pair_list(f); });
        INFO(msg);
        CHECK(msg.find(expect) != std::string::npos);
    }
    CHECK(testutil::expect_data_error([&] { read_pair_list(dir + "/none.txt"); }).find("none.txt") != std::string::npos);
}
