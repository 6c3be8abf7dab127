// Model files: the network configuration, preprocessing, threshold and weights in one
// safetensors file that PyTorch loads as it is.
#include "siamese/model.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

#include "siamese/common.hpp"
#include "siamese/files.hpp"
#include "siamese/safetensors.hpp"

namespace siamese {

using nlohmann::json;

void save_model(const std::string& path, const Model& m) {
    const ParamLayout L = make_layout(m.net);
    if (m.params.size() != L.total) throw DataError(path + ": parameter count does not match the network");
    std::vector<std::pair<std::string, SafeTensor>> tensors;
    for (const auto& t : L.tensors)
        tensors.push_back({t.name, {t.shape, std::vector<float>(m.params.begin() + long(t.offset),
                                                                m.params.begin() + long(t.offset + t.size))}});
    if (!m.pixel.empty()) {
        const int64_t D = int64_t(m.net.in_h) * m.net.in_w;
        if (m.pixel.mean.size() != size_t(D) || m.pixel.basis.size() != size_t(m.pixel.dims) * size_t(D))
            throw DataError(path + ": pixel branch does not match the network's input");
        tensors.push_back({"pixel.mean", {{D}, m.pixel.mean}});
        tensors.push_back({"pixel.basis", {{int64_t(m.pixel.dims), D}, m.pixel.basis}});
    }
    std::map<std::string, std::string> meta = m.extra;
    if (!m.pixel.empty()) meta["pixel_weight"] = json(m.pixel.weight).dump();
    meta["format"] = "siamese-v1";
    meta["network"] = m.net.to_json();
    meta["downsample"] = std::to_string(m.pre.downsample);
    meta["resize"] = m.pre.mode == ResizeMode::Area ? "area" : "stride";
    meta["threshold"] = json(m.threshold).dump();
    meta["margin"] = json(m.margin).dump();
    write_safetensors(path, tensors, meta);
}

Model load_model(const std::string& path) { return parse_model(read_file_bytes(path), path); }

Model parse_model(const std::string& bytes, const std::string& path) {
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> meta;
    parse_safetensors(bytes, path, tensors, meta);
    auto fail = [&](const std::string& why) -> DataError { return DataError(path + ": " + why); };
    for (const char* key : {"network", "downsample", "resize", "threshold", "margin"})
        if (!meta.count(key)) throw fail(std::string("not a siamese model: metadata '") + key + "' missing");
    Model m;
    try {
        m.net = NetConfig::from_json(meta["network"]);
    } catch (const std::exception& e) {
        throw fail(e.what());
    }
    // Every value parsed strictly: a bit flip or an edit must not become another valid number.
    long ds = 0;
    if (!parse_int_in(meta["downsample"], 1, 1024, &ds))
        throw fail("metadata downsample '" + meta["downsample"] + "' is not a whole number from 1 to 1024");
    m.pre.downsample = int(ds);
    if (meta["resize"] != "stride" && meta["resize"] != "area")
        throw fail("metadata resize '" + meta["resize"] + "' is not stride or area");
    m.pre.mode = meta["resize"] == "area" ? ResizeMode::Area : ResizeMode::Stride;
    double thr = 0, margin = 0;
    if (!parse_finite(meta["threshold"], &thr) || thr < 0 || thr > 1e30)
        throw fail("metadata threshold '" + meta["threshold"] + "' is not a finite number >= 0");
    if (!parse_finite(meta["margin"], &margin) || margin <= 0 || margin > 1e30)
        throw fail("metadata margin '" + meta["margin"] + "' is not a finite number > 0");
    m.threshold = float(thr);
    m.margin = float(margin);
    ParamLayout L;
    try {
        L = make_layout(m.net);
    } catch (const UsageError& e) {
        throw fail(std::string("bad network configuration: ") + e.what());
    }
    for (const auto& t : L.tensors) {  // every tensor present with its shape before allocating
        auto it = tensors.find(t.name);
        if (it == tensors.end()) throw fail("tensor " + t.name + " missing");
        if (it->second.shape != t.shape) throw fail("tensor " + t.name + " has the wrong shape for the network");
    }
    m.params.assign(L.total, 0.0f);
    for (const auto& t : L.tensors) {
        const auto& src = tensors[t.name].data;
        std::copy(src.begin(), src.end(), m.params.begin() + long(t.offset));
    }
    if (tensors.count("pixel.mean") || tensors.count("pixel.basis") || meta.count("pixel_weight")) {
        const int64_t D = int64_t(m.net.in_h) * m.net.in_w;
        auto mean = tensors.find("pixel.mean"), basis = tensors.find("pixel.basis");
        if (mean == tensors.end() || basis == tensors.end() || !meta.count("pixel_weight"))
            throw fail("pixel branch incomplete (needs tensors pixel.mean, pixel.basis and metadata pixel_weight)");
        if (mean->second.shape != std::vector<int64_t>{D} || basis->second.shape.size() != 2 ||
            basis->second.shape[1] != D || basis->second.shape[0] < 1 || basis->second.shape[0] > 4096)
            throw fail("pixel branch tensors have the wrong shape for the network's input");
        double w = 0;
        if (!parse_finite(meta["pixel_weight"], &w) || w <= 0 || w > 1e6)
            throw fail("metadata pixel_weight '" + meta["pixel_weight"] + "' is not a finite number > 0");
        m.pixel.dims = int(basis->second.shape[0]);
        m.pixel.weight = float(w);
        m.pixel.mean = mean->second.data;
        m.pixel.basis = basis->second.data;
        for (float v : m.pixel.mean)
            if (!std::isfinite(v)) throw fail("pixel.mean holds a NaN or infinity");
        for (float v : m.pixel.basis)
            if (!std::isfinite(v)) throw fail("pixel.basis holds a NaN or infinity");
    }
    for (const auto& [k, v] : meta)
        if (k != "network" && k != "downsample" && k != "resize" && k != "threshold" && k != "margin" && k != "format" &&
            k != "checksum" && k != "pixel_weight")
            m.extra[k] = v;
    return m;
}

}  // namespace siamese
