// The C++ tests' check: a failed CHECK prints its place and message and counts; main returns
// checks_done(), which reports the count.
#pragma once
#include <cstdio>

inline int g_fail = 0;

#define CHECK(cond, ...)                                        \
  do {                                                          \
    if (!(cond)) {                                              \
      std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      std::fprintf(stderr, __VA_ARGS__);                        \
      std::fprintf(stderr, "\n");                               \
      ++g_fail;                                                 \
    }                                                           \
  } while (0)

// 0 if every check passed (then prints `passed`), else 1.
inline int checks_done(const char* passed) {
  if (g_fail) {
    std::fprintf(stderr, "%d check(s) failed\n", g_fail);
    return 1;
  }
  std::printf("%s\n", passed);
  return 0;
}
