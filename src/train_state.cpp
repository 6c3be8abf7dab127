#include "siamese/train_state.hpp"

#include <map>

#include "siamese/files.hpp"
#include "siamese/safetensors.hpp"
#include "siamese/common.hpp"

namespace siamese {

void save_train_state(const std::string& path, const TrainState& s) {
    // Views of the state's vectors: 12 MB for the strong recipe, at every epoch end.
    auto vec = [](const std::vector<float>& v) { return SafeTensorView{{int64_t(v.size())}, v.data(), v.size()}; };
    const std::vector<std::pair<std::string, SafeTensorView>> tensors = {
        {"params", vec(s.params)}, {"opt_state", vec(s.opt_state)}, {"epoch_losses", vec(s.progress.losses)}};
    const std::map<std::string, std::string> meta = {{"format", "siamese-train-state-v1"},
                                                     {"args", s.args_json},
                                                     {"history", s.history_json},
                                                     {"epoch", std::to_string(s.progress.epoch)},
                                                     {"next_batch", std::to_string(s.progress.next_batch)},
                                                     {"step", std::to_string(s.progress.step)},
                                                     {"order_checksum", s.progress.order_checksum},
                                                     {"data", s.data_fingerprint}};
    write_safetensor_views(path, tensors, meta);
}

TrainState load_train_state(const std::string& path) { return parse_train_state(read_file_bytes(path), path); }

TrainState parse_train_state(const std::string& bytes, const std::string& path) {
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> meta;
    parse_safetensors(bytes, path, tensors, meta);
    auto need = [&](const char* key) -> const std::string& {
        auto it = meta.find(key);
        if (it == meta.end()) throw DataError(path + ": not a training state (metadata '" + key + "' missing)");
        return it->second;
    };
    if (need("format") != "siamese-train-state-v1") throw DataError(path + ": unknown training-state format");
    TrainState s;
    s.args_json = need("args");
    s.history_json = need("history");
    long epoch = 0, next_batch = 0, step = 0;
    if (!parse_int_in(need("epoch"), 1, 1L << 30, &epoch) || !parse_int_in(need("next_batch"), 0, 1L << 30, &next_batch) ||
        !parse_int_in(need("step"), 0, 1L << 62, &step))
        throw DataError(path + ": bad epoch/step metadata");
    s.progress.epoch = int(epoch);
    s.progress.next_batch = int(next_batch);
    s.progress.step = uint64_t(step);
    s.progress.order_checksum = need("order_checksum");
    if (auto it = meta.find("data"); it != meta.end()) s.data_fingerprint = it->second;
    for (const char* t : {"params", "opt_state", "epoch_losses"})
        if (!tensors.count(t)) throw DataError(path + ": tensor '" + t + "' missing");
    s.params = tensors["params"].data;
    s.opt_state = tensors["opt_state"].data;
    s.progress.losses = tensors["epoch_losses"].data;
    if (s.opt_state.size() != 2 * s.params.size()) throw DataError(path + ": optimizer state does not match the weights");
    return s;
}

}  // namespace siamese
