// Comparing two flat parameter-layout buffers tensor by tensor, so that a failing check names
// the layer (conv1.weight, fc2.bias...).
#pragma once
#include <catch2/catch.hpp>
#include <vector>

#include "siamese/network.hpp"
#include "test_util.hpp"

namespace testutil {

template <class A, class B>
void check_per_tensor(const siamese::ParamLayout& L, const A& got, const B& want, double max_rel_error) {
    for (const auto& t : L.tensors) {
        INFO(t.name);
        const std::vector<double> a(got.begin() + long(t.offset), got.begin() + long(t.offset + t.size));
        const std::vector<double> b(want.begin() + long(t.offset), want.begin() + long(t.offset + t.size));
        CHECK(rel_error(a, b) < max_rel_error);
    }
}

}  // namespace testutil
