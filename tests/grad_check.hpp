// Central finite differences in double precision for the gradient checks.
#pragma once
#include <functional>
#include <vector>

namespace testutil {

// d f / d x_i for every i, by (f(x + h e_i) - f(x - h e_i)) / 2h. x is restored.
inline std::vector<double> numeric_gradient(std::vector<double>& x, const std::function<double()>& f, double h = 1e-6) {
    std::vector<double> g(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        const double keep = x[i];
        x[i] = keep + h;
        const double up = f();
        x[i] = keep - h;
        const double down = f();
        x[i] = keep;
        g[i] = (up - down) / (2 * h);
    }
    return g;
}

}  // namespace testutil
