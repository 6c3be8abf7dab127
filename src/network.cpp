#include "siamese/network.hpp"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "siamese/common.hpp"

namespace siamese {

std::string NetConfig::to_json() const {
    nlohmann::json j = {{"in_h", in_h},     {"in_w", in_w},
                        {"conv_filters", conv_filters}, {"kernel", kernel},
                        {"pool", pool},     {"conv_dropout", conv_dropout},
                        {"dense", dense},   {"dense_dropout", dense_dropout}};
    // The head's keys only when they differ from the reference recipe: its model files stay
    // byte-identical to those written before the head became configurable.
    if (!embed_relu) j["embed_activation"] = "none";
    if (l2_normalize) j["l2_normalize"] = true;
    if (flip_average) j["flip_average"] = true;
    return j.dump();
}

NetConfig NetConfig::from_json(const std::string& s) {
    try {
        const auto j = nlohmann::json::parse(s);
        // Checked types and ranges before any conversion (a forged 1e61 must not be cast to int).
        auto int_of = [](const nlohmann::json& v, const char* what) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000000)
                throw DataError(std::string("'") + what + "' must be an integer in 0..1000000");
            return int(v.get<int64_t>());
        };
        auto ints_of = [&](const nlohmann::json& v, const char* what) {
            if (!v.is_array()) throw DataError(std::string("'") + what + "' must be a list");
            std::vector<int> out;
            for (const auto& x : v) out.push_back(int_of(x, what));
            return out;
        };
        auto rate_of = [](const nlohmann::json& v, const char* what) {
            if (!v.is_number() || !(v.get<double>() >= 0.0 && v.get<double>() < 1.0))
                throw DataError(std::string("'") + what + "' must be a number in [0, 1)");
            return float(v.get<double>());
        };
        NetConfig c;
        c.in_h = int_of(j.at("in_h"), "in_h");
        c.in_w = int_of(j.at("in_w"), "in_w");
        c.conv_filters = ints_of(j.at("conv_filters"), "conv_filters");
        c.kernel = int_of(j.at("kernel"), "kernel");
        c.pool = int_of(j.at("pool"), "pool");
        c.conv_dropout = rate_of(j.at("conv_dropout"), "conv_dropout");
        c.dense = ints_of(j.at("dense"), "dense");
        c.dense_dropout = rate_of(j.at("dense_dropout"), "dense_dropout");
        if (j.contains("embed_activation")) {
            const auto& v = j.at("embed_activation");
            if (!v.is_string() || (v != "relu" && v != "none"))
                throw DataError("'embed_activation' must be \"relu\" or \"none\"");
            c.embed_relu = v == "relu";
        }
        if (j.contains("l2_normalize")) {
            if (!j.at("l2_normalize").is_boolean()) throw DataError("'l2_normalize' must be true or false");
            c.l2_normalize = j.at("l2_normalize").get<bool>();
        }
        if (j.contains("flip_average")) {
            if (!j.at("flip_average").is_boolean()) throw DataError("'flip_average' must be true or false");
            c.flip_average = j.at("flip_average").get<bool>();
        }
        c.validate();
        return c;
    } catch (const nlohmann::json::exception& e) {
        throw DataError(std::string("bad network configuration: ") + e.what());
    } catch (const UsageError& e) {
        throw DataError(std::string("bad network configuration: ") + e.what());
    } catch (const DataError& e) {
        throw DataError(std::string("bad network configuration: ") + e.what());
    }
}

void NetConfig::validate() const {
    auto fail = [](const std::string& m) { throw UsageError(m); };
    if (conv_filters.empty()) fail("at least one conv layer is needed");
    if (dense.empty()) fail("at least one dense layer is needed");
    if (kernel < 1 || kernel > 15) fail("--kernel must be 1..15");
    if (pool < 1 || pool > 8) fail("--pool must be 1..8");
    for (int f : conv_filters)
        if (f < 1 || f > 1024) fail("conv filter counts must be 1..1024");
    for (int d : dense)
        if (d < 1 || d > 65536) fail("dense widths must be 1..65536");
    if (!(conv_dropout >= 0 && conv_dropout < 1) || !(dense_dropout >= 0 && dense_dropout < 1))
        fail("dropout rates must be in [0, 1)");
    if (in_h < 1 || in_w < 1 || in_h > 16384 || in_w > 16384) fail("input sides must be 1..16384");
    if (conv_filters.size() > 16 || dense.size() > 16) fail("at most 16 conv and 16 dense layers");
    int h = in_h, w = in_w;
    for (size_t l = 0; l < conv_filters.size(); ++l) {
        h = (h - kernel + 1) / pool;
        w = (w - kernel + 1) / pool;
        if (h < 1 || w < 1)
            fail("the image (" + std::to_string(in_w) + "x" + std::to_string(in_h) + ") is too small for conv layer " +
                 std::to_string(l + 1) + " with kernel " + std::to_string(kernel) + " and pool " + std::to_string(pool));
    }
    // Parameter count in 64 bits: a forged configuration must not overflow or allocate terabytes.
    int64_t params = 0, c = 1, in = int64_t(conv_filters.back()) * h * w;
    for (int f : conv_filters) {
        params += int64_t(f) * c * kernel * kernel + f;
        c = f;
    }
    for (int d : dense) {
        params += in * d + d;
        in = d;
        if (params > (int64_t(1) << 30)) break;
    }
    if (params > (int64_t(1) << 30)) fail("the network has over 2^30 parameters");
}

ParamLayout make_layout(const NetConfig& cfg) {
    cfg.validate();
    ParamLayout L;
    int C = 1, H = cfg.in_h, W = cfg.in_w;
    auto add = [&](const std::string& name, std::vector<int64_t> shape) {
        size_t n = 1;
        for (auto d : shape) n *= size_t(d);
        L.tensors.push_back({name, shape, L.total, n});
        L.total += n;
        return L.tensors.back().offset;
    };
    for (size_t l = 0; l < cfg.conv_filters.size(); ++l) {
        const ConvShape s = conv_shape(C, H, W, cfg.conv_filters[l], cfg.kernel, cfg.pool);
        L.conv.push_back(s);
        const std::string n = "conv" + std::to_string(l + 1);
        L.conv_w.push_back(add(n + ".weight", {s.F, s.C, s.K, s.K}));
        L.conv_b.push_back(add(n + ".bias", {s.F}));
        C = s.F; H = s.Hp; W = s.Wp;
    }
    int in = C * H * W;
    for (size_t l = 0; l < cfg.dense.size(); ++l) {
        L.dense.push_back({in, cfg.dense[l]});
        const std::string n = "fc" + std::to_string(l + 1);
        L.dense_w.push_back(add(n + ".weight", {cfg.dense[l], in}));
        L.dense_b.push_back(add(n + ".bias", {cfg.dense[l]}));
        in = cfg.dense[l];
    }
    return L;
}

std::string first_nonfinite_tensor(const ParamLayout& L, const float* v) {
    // Every training step asks, and almost always of finite values: one branch-free pass over
    // the whole buffer first (exponent bits all ones: infinity or NaN), which vectorizes where
    // the scan that names the tensor, exiting early, does not.
    uint32_t bad = 0;
    for (size_t i = 0; i < L.total; ++i) {
        uint32_t u;
        std::memcpy(&u, v + i, sizeof u);
        bad |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
    }
    if (!bad) return "";
    for (const auto& t : L.tensors)
        for (size_t i = 0; i < t.size; ++i)
            if (!std::isfinite(v[t.offset + i])) return t.name;
    return "";
}

std::vector<float> glorot_init(const ParamLayout& L, uint64_t seed) {
    std::vector<float> p(L.total, 0.0f);
    Rng r(seed ^ 0x6A09E667F3BCC909ull);
    auto fill = [&](size_t off, size_t n, double fan_in, double fan_out) {
        const double limit = std::sqrt(6.0 / (fan_in + fan_out));
        for (size_t i = 0; i < n; ++i) p[off + i] = float((2.0 * r.uniform() - 1.0) * limit);
    };
    for (size_t l = 0; l < L.conv.size(); ++l) {
        const auto& s = L.conv[l];
        fill(L.conv_w[l], size_t(s.F) * s.C * s.K * s.K, double(s.C) * s.K * s.K, double(s.F) * s.K * s.K);
    }
    for (size_t l = 0; l < L.dense.size(); ++l)
        fill(L.dense_w[l], size_t(L.dense[l].in) * L.dense[l].out, L.dense[l].in, L.dense[l].out);
    return p;
}

}  // namespace siamese
