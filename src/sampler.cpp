#include "siamese/sampler.hpp"

#include <algorithm>
#include <map>

#include "siamese/common.hpp"
#include "siamese/files.hpp"

namespace siamese {

GroupSource group_source(const PairSplit& split) {
    std::vector<int32_t> imgs(split.train.a);
    imgs.insert(imgs.end(), split.train.b.begin(), split.train.b.end());
    std::sort(imgs.begin(), imgs.end());
    imgs.erase(std::unique(imgs.begin(), imgs.end()), imgs.end());
    GroupSource s;
    for (int32_t i : imgs) {
        if (i < 0 || size_t(i) >= split.person.size()) throw std::logic_error("group_source: image without a person");
        s.image.push_back(i);
        s.person.push_back(split.person[size_t(i)]);
    }
    return s;
}

int group_batches(const GroupSource& src, int P, int K) {
    const long per = long(P) * K;
    return int(std::max<long>(1, (long(src.image.size()) + per - 1) / per));
}

int group_batch_images(const GroupSource& src, int P, int K) {
    std::vector<int32_t> people(src.person);
    std::sort(people.begin(), people.end());
    const int distinct = int(std::unique(people.begin(), people.end()) - people.begin());
    return std::min(P, distinct) * K;
}

GroupOrder group_epoch_order(const GroupSource& src, int P, int K, uint64_t seed, int epoch) {
    std::map<int32_t, std::vector<int32_t>> by_person;  // ordered: the walk depends on ids only
    for (size_t i = 0; i < src.image.size(); ++i) by_person[src.person[i]].push_back(src.image[i]);
    std::vector<int32_t> people;
    for (const auto& [p, imgs] : by_person) people.push_back(p);
    GroupOrder o;
    if (people.empty()) return o;
    Rng r(seed * 0xD1B54A32D192ED03ull + uint64_t(epoch) * 0x9E3779B97F4A7C15ull + 7);
    const int p_eff = std::min<int>(P, int(people.size()));
    std::vector<int32_t> walk;
    size_t at = 0;
    std::map<int32_t, std::pair<std::vector<int32_t>, size_t>> image_walk;
    const int batches = group_batches(src, P, K);
    for (int b = 0; b < batches; ++b) {
        std::vector<int32_t> chosen;
        while (int(chosen.size()) < p_eff) {
            if (at == walk.size()) {
                walk = people;
                r.shuffle(walk);
                at = 0;
            }
            const int32_t p = walk[at++];
            if (std::find(chosen.begin(), chosen.end(), p) == chosen.end()) chosen.push_back(p);
        }
        for (int32_t p : chosen) {
            auto& [iw, pos] = image_walk[p];
            for (int k = 0; k < K; ++k) {
                if (pos == iw.size()) {
                    iw = by_person[p];
                    r.shuffle(iw);
                    pos = 0;
                }
                o.image.push_back(iw[pos++]);
                o.person.push_back(p);
            }
        }
    }
    return o;
}

std::string group_order_checksum(const GroupOrder& order) {
    std::string bytes;
    for (int i = 0; i < order.size(); ++i) {
        const int32_t v[2] = {order.image[i], order.person[i]};
        bytes.append(reinterpret_cast<const char*>(v), sizeof v);
    }
    return fnv1a64_hex(bytes.data(), bytes.size());
}

}  // namespace siamese
