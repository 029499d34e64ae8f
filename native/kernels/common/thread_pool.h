// A small persistent thread pool for large kernel calls.
//
// parallel_for(n, grain, fn) splits [0, n) into contiguous chunks of at least
// `grain` items and runs fn(begin, end) on them, the calling thread taking a
// share.  Chunk boundaries depend only on n, grain and the pool size, so a
// kernel that must not depend on the thread count (the noise stream) should
// derive its randomness from the item index, never from the chunk.
//
// The pool runs one parallel_for at a time.  A call made while it is busy
// (from another Node worker thread, or nested inside a chunk) runs inline on
// the calling thread: correct, just not parallel.
#pragma once
#include <cstdint>
#include <functional>

namespace dplora {

using RangeFn = std::function<void(int64_t begin, int64_t end)>;

void parallel_for(int64_t n, int64_t grain, const RangeFn &fn);

int pool_threads();  // threads that may run a job, caller included
void set_pool_threads(int n);

}  // namespace dplora
