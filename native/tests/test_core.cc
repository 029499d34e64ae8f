// ISA selection and the thread pool: every index covered exactly once, for
// several pool sizes, and nested calls run inline.
#include <atomic>
#include <vector>

#include "check.h"
#include "dplora.h"
#include "thread_pool.h"

int main() {
  CHECK(dplora_isa_supported(DPLORA_ISA_SCALAR) == 1);
  CHECK(dplora_set_isa(DPLORA_ISA_SCALAR) == DPLORA_OK);
  CHECK(dplora_active_isa() == DPLORA_ISA_SCALAR);
  CHECK(dplora_set_isa(99) == DPLORA_EINVAL);
  CHECK(dplora_set_num_threads(0) == DPLORA_EINVAL);

  for (int threads : {1, 2, 3, 8}) {
    CHECK(dplora_set_num_threads(threads) == DPLORA_OK);
    CHECK(dplora_num_threads() == threads);
    for (int64_t n : {0, 1, 7, 1000, 100003}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (auto &h : hits) h.store(0);
      dplora::parallel_for(n, 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
        // A nested call must run inline and still cover its range.
        std::atomic<int> inner{0};
        dplora::parallel_for(10, 1,
                             [&](int64_t ib, int64_t ie) { inner += static_cast<int>(ie - ib); });
        if (inner.load() != 10) std::abort();
      });
      for (auto &h : hits) CHECK(h.load() == 1);
    }
  }
  TEST_MAIN_END();
}
