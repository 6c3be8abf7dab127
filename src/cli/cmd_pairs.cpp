// siamese pairs: write the pairs a training run would use (same data, protocol and seed) as
// JSON, so other tools (tools/pytorch_twin.py) train and test on exactly the same pairs; or one
// split as a list `verify --pairs` reads (a run's test pairs rated again, or edited).
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
    auto* sub = app.add_subcommand("pairs", "Write the train/validation/test pairs of a protocol and seed as JSON, or one split as a verify --pairs list");
    struct Args {
        std::string data, protocol = "tutorial", train_people, test_people, out, format = "json", split = "test";
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
    sub->add_option("--format", a->format,
                    "json (every split, paths relative to --data) or list (one split as verify --pairs reads it: "
                    "FIRST<tab>SECOND<tab>LABEL a line)")
        ->capture_default_str()->check(CLI::IsMember({"json", "list"}));
    sub->add_option("--split", a->split, "--format list: the pairs of which split: test, val or train")
        ->capture_default_str()->check(CLI::IsMember({"test", "val", "train"}));
    sub->add_option("--out", a->out, "Output file")->required();
    return [a]() {
        Preprocess pp;
        const ImageBank bank = load_dataset(a->data, pp);
        const PairSplit split = make_split(bank, a->protocol, a->train_people, a->test_people, a->seed);
        if (a->format == "list") {
            const PairSet& p = a->split == "test" ? split.test : a->split == "val" ? split.val : split.train;
            // A list line is tab-separated and ends at a newline: a path holding either cannot be one
            // (the data folder, in the header, is a prefix of every path).
            for (const auto& f : bank.files)
                if (f.find_first_of("\t\r\n") != std::string::npos)
                    throw DataError(f + ": a tab or line break in the path; use --format json for this folder");
            std::string text = "# siamese pairs: the " + a->split + " pairs of protocol " + a->protocol + ", seed " +
                               std::to_string(a->seed) + ", data " + a->data + " (" + std::to_string(p.size()) + " pairs, " +
                               std::to_string(p.genuine()) + " genuine)\n";
            for (int i = 0; i < p.size(); ++i)
                text += bank.files[size_t(p.a[i])] + "\t" + bank.files[size_t(p.b[i])] + "\t" + (p.label[i] > 0.5f ? "1" : "0") + "\n";
            write_file_atomic(a->out, text);
            std::printf("wrote %s: %d %s pairs\n", a->out.c_str(), p.size(), a->split.c_str());
            return 0;
        }
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
