#include <catch2/catch.hpp>

#include "siamese/checkpoint_writer.hpp"
#include "siamese/files.hpp"
#include "siamese/gallery.hpp"
#include "siamese/model.hpp"
#include "siamese/safetensors.hpp"
#include "siamese/train_state.hpp"
#include "siamese/common.hpp"
#include "siamese/pgm.hpp"
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.hpp"

using namespace siamese;

namespace {
Model sample_model() {
    Model m;
    m.threshold = 0.4321f;
    m.margin = 1.5f;
    m.pre.downsample = 3;
    m.params = glorot_init(make_layout(m.net), 9);
    m.extra["protocol"] = "people";
    return m;
}
std::string error_loading(const std::string& path) {
    return testutil::expect_data_error([&] { load_model(path); });
}
}  // namespace

TEST_CASE("model round-trips through safetensors", "[checkpoint]") {
    const std::string dir = testutil::temp_dir("ckpt");
    const Model m = sample_model();
    save_model(dir + "/m.safetensors", m);
    const Model back = load_model(dir + "/m.safetensors");
    CHECK(back.params == m.params);
    CHECK(back.threshold == m.threshold);
    CHECK(back.margin == m.margin);
    CHECK(back.pre.downsample == 3);
    CHECK(back.net.to_json() == m.net.to_json());
    CHECK(back.extra.at("protocol") == "people");
}

TEST_CASE("safetensors layout: header length, JSON, PyTorch names and shapes, 8-byte aligned data", "[checkpoint]") {
    const std::string dir = testutil::temp_dir("ckpt_layout");
    save_model(dir + "/m.safetensors", sample_model());
    const std::string bytes = read_file_bytes(dir + "/m.safetensors");
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
    CHECK((8 + n) % 8 == 0);
    const auto header = nlohmann::json::parse(bytes.substr(8, n));
    CHECK(header.at("conv1.weight").at("shape") == nlohmann::json({6, 1, 3, 3}));
    CHECK(header.at("conv2.weight").at("shape") == nlohmann::json({12, 6, 3, 3}));
    CHECK(header.at("fc1.weight").at("shape") == nlohmann::json({128, 1440}));
    CHECK(header.at("fc2.bias").at("shape") == nlohmann::json({50}));
    CHECK(header.at("fc2.bias").at("dtype") == "F32");
    const auto last = header.at("fc2.bias").at("data_offsets");
    CHECK(8 + n + last[1].get<uint64_t>() == bytes.size());
    CHECK(header.at("__metadata__").at("threshold").is_string());
}

TEST_CASE("corrupt model files are refused with a clear error", "[checkpoint]") {
    const std::string dir = testutil::temp_dir("ckpt_bad");
    save_model(dir + "/m.safetensors", sample_model());
    const std::string good = read_file_bytes(dir + "/m.safetensors");
    testutil::write_bytes(dir + "/trunc.safetensors", good.substr(0, good.size() - 100));
    CHECK(error_loading(dir + "/trunc.safetensors").find("trunc.safetensors") != std::string::npos);
    CHECK(error_loading(dir + "/trunc.safetensors").find("outside the file") != std::string::npos);
    testutil::write_bytes(dir + "/short.safetensors", good.substr(0, 5));
    CHECK(error_loading(dir + "/short.safetensors").find("truncated") != std::string::npos);
    std::string badjson = good;
    badjson[8] = '[';
    badjson[9] = '}';
    testutil::write_bytes(dir + "/json.safetensors", badjson);
    CHECK(error_loading(dir + "/json.safetensors").find("bad JSON") != std::string::npos);
    // A network config that does not match the stored tensors.
    Model m = sample_model();
    save_model(dir + "/m2.safetensors", m);
    std::string other = read_file_bytes(dir + "/m2.safetensors");
    const size_t at = other.find("[6,12]");
    REQUIRE(at != std::string::npos);
    other.replace(at, 6, "[7,12]");
    testutil::write_bytes(dir + "/shape.safetensors", other);
    CHECK(error_loading(dir + "/shape.safetensors").find("checksum") != std::string::npos);  // an edit
    // The same mismatch written with a valid checksum: the shapes are still checked.
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> meta;
    read_safetensors(dir + "/m2.safetensors", tensors, meta);
    const size_t k = meta["network"].find("[6,12]");
    REQUIRE(k != std::string::npos);
    meta["network"].replace(k, 6, "[7,12]");
    write_safetensors(dir + "/shape2.safetensors", {tensors.begin(), tensors.end()}, meta);
    CHECK(error_loading(dir + "/shape2.safetensors").find("wrong shape") != std::string::npos);
    CHECK(error_loading(dir + "/missing.safetensors").find("cannot open") != std::string::npos);
}

TEST_CASE("inputs the fuzzer found are refused cleanly (regressions)", "[checkpoint][fuzz]") {
    // Each file in tests/fuzz_regressions once crashed or hit undefined behaviour in the loader
    // (e.g. data_offsets of 8.7e61, a float cast to an integer); now each is a DataError.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(std::string(SIAMESE_SOURCE_DIR) + "/tests/fuzz_regressions")) {
        ++files;
        INFO(e.path());
        const std::string bytes = read_file_bytes(e.path().string());
        CHECK_THROWS_AS(parse_model(bytes, e.path().string()), DataError);
    }
    CHECK(files >= 1);
}

namespace {
TrainState state_at(uint64_t step) {
    TrainState s;
    s.args_json = "{}";
    s.history_json = "[]";
    s.progress.step = step;
    s.params.assign(1000, float(step));
    s.opt_state.assign(2000, 0.5f);
    return s;
}
}  // namespace

TEST_CASE("checkpoints written on their own thread: the latest on disk after flush, a failure thrown", "[checkpoint][writer]") {
    const std::string dir = testutil::temp_dir("writer");
    const std::string path = dir + "/state.safetensors";
    {
        CheckpointWriter w(path);
        for (uint64_t step = 1; step <= 50; ++step) w.submit(state_at(step));
        w.flush();
        CHECK(load_train_state(path).progress.step == 50u);  // the last one, whatever was skipped
        CHECK(load_train_state(path).params[0] == 50.0f);
        CHECK(w.written() >= 1);
        CHECK(w.written() + w.replaced() == 50);  // each snapshot either written or replaced
        w.submit(state_at(51));
    }  // the destructor writes what is in hand
    CHECK(load_train_state(path).progress.step == 51u);
    // A write that fails is reported by the next flush (and submit), naming the file.
    CheckpointWriter bad(dir + "/no/such/folder/state.safetensors");
    bad.submit(state_at(1));
    try {
        bad.flush();
        FAIL("no error");
    } catch (const DataError& e) {
        CHECK(std::string(e.what()).find("no/such/folder/state.safetensors") != std::string::npos);
    }
    bad.flush();  // reported once
}

// Files written by earlier versions stay readable: tests/fixtures holds one gallery per checksum
// scheme, written by the version that introduced it ("v2:" FNV-1a, 2026-11-29; "v3:" XXH3,
// 2026-12-01), the same two photos' embeddings in both. A change to either scheme's definition
// (what is hashed, in what order, with which function) fails here.
TEST_CASE("galleries of every checksum scheme load, a flipped bit in either is caught, a newer scheme is named", "[checkpoint]") {
    const std::string fixtures = std::string(SIAMESE_SOURCE_DIR) + "/tests/fixtures/";
    const Gallery v2 = load_gallery(fixtures + "gallery_v2.safetensors");
    const Gallery v3 = load_gallery(fixtures + "gallery_v3.safetensors");
    CHECK(v2.people == std::vector<std::string>{"alice", "bob"});
    CHECK(v2.embed_dim == 50);
    CHECK(v3.people == v2.people);
    CHECK(v3.embeddings == v2.embeddings);
    CHECK(v3.model_checksum == v2.model_checksum);
    const std::string dir = testutil::temp_dir("schemes");
    for (const char* name : {"gallery_v2.safetensors", "gallery_v3.safetensors"}) {
        INFO(name);
        std::string bytes = read_file_bytes(fixtures + name);
        bytes[bytes.size() - 3] ^= 0x10;  // one bit of the last embedding
        testutil::write_bytes(dir + "/flipped.safetensors", bytes);
        CHECK_THROWS_WITH(load_gallery(dir + "/flipped.safetensors"), Catch::Contains("checksum mismatch"));
    }
    // What this version writes: the v3 scheme, whatever scheme the file it read had.
    save_gallery(dir + "/again.safetensors", v2);
    const std::string again = read_file_bytes(dir + "/again.safetensors");
    CHECK(again.find("\"checksum\":\"v3:") != std::string::npos);
    CHECK(load_gallery(dir + "/again.safetensors").embeddings == v2.embeddings);
    // A scheme from a later version is named as such, not reported as corruption or as old.
    std::string later = read_file_bytes(fixtures + "gallery_v3.safetensors");
    const size_t at = later.find("\"v3:");
    REQUIRE(at != std::string::npos);
    later[at + 2] = '9';
    testutil::write_bytes(dir + "/later.safetensors", later);
    CHECK_THROWS_WITH(load_gallery(dir + "/later.safetensors"), Catch::Contains("newer format (v9)"));
}
