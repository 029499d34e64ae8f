// Minimal assertion helpers for the native tests (no framework needed).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>

static int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

#define CHECK_NEAR(a, b, rel)                                                                   \
  do {                                                                                          \
    double a_ = (a), b_ = (b);                                                                  \
    double s_ = std::fmax(1.0, std::fmax(std::fabs(a_), std::fabs(b_)));                        \
    if (!(std::fabs(a_ - b_) <= (rel)*s_)) {                                                    \
      std::fprintf(stderr, "%s:%d: %s = %.17g vs %s = %.17g\n", __FILE__, __LINE__, #a, a_, #b, \
                   b_);                                                                         \
      ++g_failures;                                                                             \
    }                                                                                           \
  } while (0)

#define TEST_MAIN_END()                                         \
  do {                                                          \
    if (g_failures) {                                           \
      std::fprintf(stderr, "%d check(s) failed\n", g_failures); \
      return 1;                                                 \
    }                                                           \
    std::printf("ok\n");                                        \
    return 0;                                                   \
  } while (0)
