// The multiply-add of the CPU engine's fast paths and of the plain loops they are tested against.
#pragma once
#include <cmath>

namespace siamese {

// c + a*b in one rounding where the target has FMA (as the compiler contracts `c += a*b` there),
// so the plain and the blocked loops give the same bits; two roundings elsewhere.
template <class T>
inline T madd(T a, T b, T c) {
#ifdef __FMA__
    return std::fma(a, b, c);
#else
    return c + a * b;
#endif
}

}  // namespace siamese
