// Persistent worker pool behind parallel_for (see thread_pool.h).
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "dplora.h"

namespace dplora {
namespace {

int default_threads() {
  const char *env = std::getenv("DPLORA_THREADS");
  if (env != nullptr && *env != '\0') {
    char *end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min(hc, 1024u));
}

thread_local bool tls_in_pool_job = false;

class Pool {
 public:
  Pool() { resize(default_threads()); }
  ~Pool() { stop_workers(); }

  int threads() {
    std::lock_guard<std::mutex> lk(job_mu_);
    return nthreads_;
  }

  void resize(int n) {
    std::lock_guard<std::mutex> lk(job_mu_);
    stop_workers();
    nthreads_ = std::max(1, n);
    stopping_ = false;
    for (int i = 1; i < nthreads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  void run(int64_t n, int64_t grain, const RangeFn &fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    std::unique_lock<std::mutex> job(job_mu_, std::try_to_lock);
    if (!job.owns_lock() || tls_in_pool_job || nthreads_ == 1 || n <= grain) {
      fn(0, n);
      return;
    }
    int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, nthreads_ * 4);
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      nchunks_ = chunks;
      next_.store(0);
      done_ = 0;
      ++generation_;
    }
    cv_.notify_all();
    work();
    done_cv_.notify_all();
    std::unique_lock<std::mutex> lk(mu_);
    // Wait for every chunk and for every worker that joined this job to
    // leave work(), so no worker can carry this job's state into the next.
    done_cv_.wait(lk, [&] { return done_ == nchunks_ && active_ == 0; });
    fn_ = nullptr;
  }

 private:
  void work() {
    tls_in_pool_job = true;
    for (;;) {
      int64_t c = next_.fetch_add(1);
      if (c >= nchunks_) break;
      int64_t b = n_ * c / nchunks_, e = n_ * (c + 1) / nchunks_;
      (*fn_)(b, e);
      std::lock_guard<std::mutex> lk(mu_);
      ++done_;
    }
    tls_in_pool_job = false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        if (fn_ == nullptr) continue;
        ++active_;
      }
      work();
      std::lock_guard<std::mutex> lk(mu_);
      --active_;
      done_cv_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto &t : workers_) t.join();
    workers_.clear();
  }

  std::mutex job_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  int nthreads_ = 1;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  const RangeFn *fn_ = nullptr;
  int64_t n_ = 0, nchunks_ = 0, done_ = 0;
  int active_ = 0;  // workers inside work() for the current job
  std::atomic<int64_t> next_{0};
};

Pool &pool() {
  static Pool *p = new Pool();  // never destroyed: workers may outlive statics
  return *p;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, const RangeFn &fn) {
  pool().run(n, grain, fn);
}
int pool_threads() {
  return pool().threads();
}
void set_pool_threads(int n) {
  pool().resize(n);
}

}  // namespace dplora

extern "C" {
int dplora_num_threads(void) {
  return dplora::pool_threads();
}
int dplora_set_num_threads(int n) {
  if (n < 1 || n > 1024) return DPLORA_EINVAL;
  dplora::set_pool_threads(n);
  return DPLORA_OK;
}
}
