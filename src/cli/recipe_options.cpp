// The recipe options `train` and `cv` share (everything that defines the trained model).
#include "commands.hpp"
#include "siamese/run.hpp"

namespace siamese::cli {

namespace {
const char* const kRecipeOptionNames[] = {
    "--data", "--protocol", "--train-people", "--test-people", "--epochs", "--batch", "--optimizer", "--lr", "--margin",
    "--downsample", "--resize", "--conv-filters", "--kernel", "--pool", "--dense", "--conv-dropout", "--dense-dropout",
    "--seed", "--recipe", "--embed-activation", "--l2-normalize", "--sampler", "--pk-people", "--pk-images", "--mine",
    "--augment", "--augment-strength", "--schedule", "--warmup", "--loss", "--temperature", "--flip-average",
    "--augment-erase", "--weight-decay", "--pixel-branch", "--pixel-weight", "--pixel-metric", "--pixel-reg",
    "--image-size"};
}  // namespace

std::vector<std::string> given_recipe_options(CLI::App* sub) {
    std::vector<std::string> given;
    for (const char* opt : kRecipeOptionNames)
        if (sub->get_option_no_throw(opt) && sub->count(opt)) given.push_back(opt);
    return given;
}

void add_recipe_options(CLI::App* sub, RecipeOptions& a) {
    sub->add_option("--recipe", a.recipe,
                    "tutorial (the reference Keras recipe) or strong (for people never seen in training: linear L2 "
                    "embedding, P-K batches with the in-batch softmax loss, augmentation, Adam + cosine, flip "
                    "averaging, a pixel branch with a learned linear metric; README); options given explicitly override the recipe's")
        ->capture_default_str()->check(CLI::IsMember({"tutorial", "strong"}));
    sub->add_option("--data", a.data, "Folder with one sub-folder of photos (PGM, PNG, JPEG) per person (default: built-in synthetic faces)");
    sub->add_option("--protocol", a.protocol, "tutorial (the reference recipe's pairs) or people (unseen test people)")
        ->capture_default_str()->check(CLI::IsMember({"tutorial", "people"}));
    sub->add_option("--train-people", a.train_people, "People protocol: training people, 1-based, e.g. 1-30 (default: all but the test people)");
    sub->add_option("--test-people", a.test_people, "People protocol: test people, e.g. 31-40 (default: the last quarter)");
    sub->add_option("--epochs", a.epochs, "Epochs")->capture_default_str()->check(CLI::Range(1, 100000));
    sub->add_option("--batch", a.batch, "Pairs per batch")->capture_default_str()->check(CLI::Range(1, 1 << 20));
    sub->add_option("--optimizer", a.optimizer, "rmsprop, adam or sgd")->capture_default_str()
        ->check(CLI::IsMember({"rmsprop", "adam", "sgd"}));
    sub->add_option("--lr", a.lr, "Learning rate (a finite number > 0)")->capture_default_str();  // checked by run_training
    sub->add_option("--margin", a.margin, "Contrastive margin (a finite number > 0)")->capture_default_str();
    sub->add_option("--image-size", a.image_size,
                    "WIDTHxHEIGHT, e.g. 92x112: every photo of --data brought to this size first (a centre crop to its "
                    "aspect, then resampled, as verify's --fit crop) (default: the first photo's size)");
    sub->add_option("--downsample", a.downsample, "Downsampling factor")->capture_default_str()->check(CLI::Range(1, 1024));
    sub->add_option("--resize", a.resize, "stride (img[::f, ::f], the recipe) or area (mean of f x f blocks)")
        ->capture_default_str()->check(CLI::IsMember({"stride", "area"}));
    sub->add_option("--conv-filters", a.conv_filters, "Filters per conv layer")->capture_default_str();
    sub->add_option("--kernel", a.kernel, "Conv kernel size")->capture_default_str();
    sub->add_option("--pool", a.pool, "Max-pool size")->capture_default_str();
    sub->add_option("--dense", a.dense, "Dense layer widths (the last is the embedding)")->capture_default_str();
    sub->add_option("--conv-dropout", a.conv_dropout, "Dropout after each conv block")->capture_default_str();
    sub->add_option("--dense-dropout", a.dense_dropout, "Dropout after each dense layer but the last")->capture_default_str();
    sub->add_option("--seed", a.seed, "Seed of pairs, initialisation, shuffles and dropout")->capture_default_str()
        ->check(seed_validator());
    sub->add_option("--embed-activation", a.embed_activation, "Activation of the embedding layer: relu or none (linear)")
        ->capture_default_str()->check(CLI::IsMember({"relu", "none"}));
    sub->add_option("--l2-normalize", a.l2_normalize, "L2-normalise the embedding (true/false)")->capture_default_str();
    sub->add_option("--flip-average", a.flip_average,
                    "Embed every image and its mirror image and average the two (at inference only: evaluation, "
                    "enrol, verify, identify; saved in the model) (true/false)")
        ->capture_default_str();
    sub->add_option("--sampler", a.sampler, "pairs (the epoch's shuffled pair list) or pk (P people x K images per batch, loss over all its pairs)")
        ->capture_default_str()->check(CLI::IsMember({"pairs", "pk"}));
    sub->add_option("--pk-people", a.pk_people, "pk: people per batch (P)")->capture_default_str()->check(CLI::Range(2, 4096));
    sub->add_option("--pk-images", a.pk_images, "pk: images per person (K)")->capture_default_str()->check(CLI::Range(1, 4096));
    sub->add_option("--mine", a.mine, "pk: all (every pair weighs alike) or balanced (genuine and impostor pairs half each)")
        ->capture_default_str()->check(CLI::IsMember({"all", "balanced"}));
    sub->add_option("--loss", a.loss,
                    "pk: the in-batch loss: contrastive (every pair, --margin) or softmax (each image's genuine "
                    "partners against all others, softmax of dot products / --temperature)")
        ->capture_default_str()->check(CLI::IsMember({"contrastive", "softmax"}));
    sub->add_option("--temperature", a.temperature, "pk, --loss softmax: temperature of the logits (a finite number > 0)")
        ->capture_default_str();  // checked by recipe_problem
    sub->add_option("--augment", a.augment, "pk: a random shift/rotation/zoom/flip/brightness view of every image at every step (true/false)")
        ->capture_default_str();
    sub->add_option("--augment-strength", a.augment_strength,
                    "pk: scales every jitter range of --augment (1: shift 6%, rotation 8 degrees, zoom 8%, brightness 0.1, contrast 15%)")
        ->capture_default_str();
    sub->add_option("--augment-erase", a.augment_erase,
                    "pk, --augment: also hide a mid-grey rectangle of up to this fraction of each side, anywhere "
                    "in the view (random erasing; 0: none)")
        ->capture_default_str();  // checked by recipe_problem
    sub->add_option("--weight-decay", a.weight_decay,
                    "Decoupled weight decay: every step p -= lr * wd * p before the optimizer's update (0: none)")
        ->capture_default_str();
    sub->add_option("--pixel-branch", a.pixel_branch,
                    "Append this many whitened eigenface components of the training people (L2-normalised, times "
                    "--pixel-weight) to the network's embedding: a hybrid embedding, fit after training (0: none)")
        ->capture_default_str();  // checked by recipe_problem
    sub->add_option("--pixel-weight", a.pixel_weight, "--pixel-branch: length of the pixel part beside the unit-length network part")
        ->capture_default_str();
    sub->add_option("--pixel-metric", a.pixel_metric,
                    "--pixel-branch: pca (whitened eigenfaces) or within (whitened again by the training people's "
                    "within-person covariance, mirror images included: a linear metric learned in closed form)")
        ->capture_default_str()->check(CLI::IsMember({"pca", "within"}));
    sub->add_option("--pixel-reg", a.pixel_reg,
                    "--pixel-metric within: added to the within-person covariance's diagonal (in the eigenfaces' unit variance)")
        ->capture_default_str();  // checked by recipe_problem
    sub->add_option("--schedule", a.schedule, "Learning rate: constant, or cosine (warm-up, then decay to 0)")
        ->capture_default_str()->check(CLI::IsMember({"constant", "cosine"}));
    sub->add_option("--warmup", a.warmup, "cosine: warm-up as a fraction of all steps")->capture_default_str();
}

}  // namespace siamese::cli
