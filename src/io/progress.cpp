// progress.cpp: see progress.hpp.
#include "io/progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace infllm::io {

namespace {

constexpr double kLivePeriodS = 0.5;

}  // namespace

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%llds", s);
  }
  return buf;
}

ProgressReporter::ProgressReporter(std::ostream& out, bool live, std::size_t total,
                                   std::size_t earlier, double period_s)
    : out_(out), live_(live), total_(total), earlier_(earlier), period_s_(period_s) {}

void ProgressReporter::on_result() { ++done_; }

void ProgressReporter::on_step(const ProgressSample& sample) {
  last_ = sample;
  const double since = std::chrono::duration<double>(Clock::now() - printed_).count();
  if (since >= (live_ ? kLivePeriodS : period_s_)) print();
}

void ProgressReporter::finish() {
  if (live_line_open_) out_ << "\n" << std::flush;
  live_line_open_ = false;
}

std::string ProgressReporter::line() const {
  const auto now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double window = std::max(std::chrono::duration<double>(now - printed_).count(), 1e-9);
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(0);
  os << "infllm generate: " << earlier_ + done_ << "/" << total_ << " requests";
  if (earlier_ > 0) os << " (" << earlier_ << " earlier)";
  os << ", prefill " << double(last_.prefill_tokens - printed_sample_.prefill_tokens) / window
     << " tok/s, decode " << double(last_.decode_tokens - printed_sample_.decode_tokens) / window
     << " tok/s, ETA ";
  const std::size_t left = total_ - std::min(total_, earlier_ + done_);
  if (left == 0) {
    os << "0s";
  } else if (done_ == 0) {
    os << "?";
  } else {
    os << duration_text(elapsed / double(done_) * double(left));
  }
  os << ", KV pool " << last_.pool_used << "/" << last_.pool_slots << " rBlocks";
  if (last_.pool_slots > 0) os << " (" << 100.0 * last_.pool_used / last_.pool_slots << "%)";
  os << ", loans " << last_.loans_outstanding << ", elapsed " << duration_text(elapsed);
  return os.str();
}

void ProgressReporter::print() {
  const std::string text = line();
  printed_ = Clock::now();
  printed_sample_ = last_;
  if (live_) {
    // \033[K clears what a longer previous line left behind.
    out_ << "\r" << text << "\033[K" << std::flush;
    live_line_open_ = true;
  } else {
    out_ << text << "\n" << std::flush;
  }
}

}  // namespace infllm::io
