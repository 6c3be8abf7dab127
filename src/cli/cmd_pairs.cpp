// siamese pairs: write the pairs a training run would use (same data, protocol and seed) as
// JSON, so other tools (tools/pytorch_twin.py) train and test on exactly the same pairs.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "siamese/files.hpp"
#include "siamese/jsonio.hpp"
#include "siamese/common.hpp"
#include "siamese/pairs.hpp"

namespace siamese::cli {

Runner add_pairs(CLI::App& app) {
    auto* sub = app.add_subcommand("pairs", "Write the train/validation/test pairs of a protocol and seed as JSON");
    struct Args {
        std::string data, protocol = "tutorial", train_people, test_people, out;
        uint64_t seed = 1;
        int downsample = 2;
    };
    auto a = std::make_shared<Args>();
    sub->add_option("--data", a->data, "Folder with one sub-folder of photos (PGM, PNG, JPEG) per person")->required();
    sub->add_option("--protocol", a->protocol, "tutorial or people")->capture_default_str()
        ->check(CLI::IsMember({"tutorial", "people"}));
    sub->add_option("--train-people", a->train_people, "People protocol: training people, e.g. 1-30");
    sub->add_option("--test-people", a->test_people, "People protocol: test people, e.g. 31-40");
    sub->add_option("--seed", a->seed, "Seed")->capture_default_str()
        ->check(seed_validator());
    sub->add_option("--out", a->out, "Output JSON file")->required();
    return [a]() {
        Preprocess pp;
        const ImageBank bank = load_dataset(a->data, pp);
        const PairSplit split = make_split(bank, a->protocol, a->train_people, a->test_people, a->seed);
        std::vector<std::string> rel;  // image paths relative to --data
        for (const auto& f : bank.files) rel.push_back(std::filesystem::relative(f, a->data).string());
        auto pairs = [](const PairSet& p) { return nlohmann::json{{"a", p.a}, {"b", p.b}, {"y", p.label}}; };
        nlohmann::json j = {{"protocol", a->protocol}, {"seed", a->seed},          {"files", rel},
                            {"person", bank.person},   {"train", pairs(split.train)}, {"val", pairs(split.val)},
                            {"test", pairs(split.test)}, {"test_people", split.test_people}};
        write_file_atomic(a->out, dump_json(j) + "\n");
        std::printf("wrote %s: %d train, %d validation, %d test pairs\n", a->out.c_str(), split.train.size(),
                    split.val.size(), split.test.size());
        return 0;
    };
}

}  // namespace siamese::cli
