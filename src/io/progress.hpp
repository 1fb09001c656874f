// progress.hpp: the progress lines of `infllm generate` on stderr.
//
// One line: requests done/total, prefill and decode tokens/s (since the previous line, so a
// long prefill does not hide in a run average), ETA (from this run's request rate), KV pool
// use and outstanding loans. On a terminal it is a live line rewritten in place (carriage return) a
// few times a second; otherwise (Slurm logs, pipes) a plain line every `period_s` seconds, so a log
// of a day-long job stays readable. `--quiet` creates no reporter.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace infllm::io {

// The engine's counters at a step boundary (cumulative since the run started).
struct ProgressSample {
  std::int64_t prefill_tokens = 0;
  std::int64_t decode_tokens = 0;
  std::int32_t pool_used = 0;
  std::int32_t pool_slots = 0;
  std::int64_t loans_outstanding = 0;
};

class ProgressReporter {
 public:
  using Clock = std::chrono::steady_clock;

  // `total` requests, of which `earlier` were finished by an earlier run (resume).
  ProgressReporter(std::ostream& out, bool live, std::size_t total, std::size_t earlier,
                   double period_s = 10.0);

  // One more request finished in this run.
  void on_result();
  // After each engine step; prints when the line is due.
  void on_step(const ProgressSample& sample);
  // Ends a live line (the caller's summary follows on its own line).
  void finish();

  // The progress line for the state now (exposed for tests and the summary).
  std::string line() const;

 private:
  void print();

  std::ostream& out_;
  bool live_;
  std::size_t total_, earlier_, done_ = 0;
  double period_s_;
  ProgressSample last_;            // the newest sample
  ProgressSample printed_sample_;  // the sample when the previous line was printed
  Clock::time_point start_ = Clock::now();
  Clock::time_point printed_ = start_;
  bool live_line_open_ = false;
};

// "1h02m", "3m05s", "42s"
std::string duration_text(double seconds);

}  // namespace infllm::io
