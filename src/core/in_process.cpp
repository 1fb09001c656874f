// in_process.cpp: see in_process.hpp.
#include "core/in_process.hpp"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "core/errors.hpp"

namespace infllm {

class InProcessCluster::Control final : public ControlPort {
 public:
  Control(InProcessCluster& c, std::int32_t rank) : c_(c), rank_(rank) {}
  std::int32_t rank() const override { return rank_; }
  std::int32_t size() const override { return c_.instances(); }

  std::vector<std::int32_t> nodes() override {
    std::vector<std::int32_t> out;
    for (std::int32_t r = 0; r < size(); ++r) out.push_back(r / c_.per_node_);
    return out;
  }

  InstanceDecision boundary(InstanceReport&& mine, const Decide& decide) override {
    std::unique_lock lock(c_.mu_);
    const std::int64_t round = deposit(lock, [&] { c_.reports_[slot()] = std::move(mine); });
    if (rank_ == 0) {
      std::vector<InstanceReport> all;
      for (auto& r : c_.reports_) all.push_back(std::move(*r)), r.reset();
      lock.unlock();
      std::vector<InstanceDecision> ds = decide(std::move(all));
      lock.lock();
      if (ds.size() != c_.reports_.size()) {
        throw InternalError("control port: one decision per instance expected");
      }
      for (std::size_t r = 0; r < ds.size(); ++r) c_.decisions_[r] = std::move(ds[r]);
      finish_round();
    } else {
      c_.wait(lock, [&] { return c_.round_ != round; });
    }
    InstanceDecision d = std::move(*c_.decisions_[slot()]);
    c_.decisions_[slot()].reset();
    return d;
  }

  void check_views(InstanceView&& mine, const CheckViews& check) override {
    std::unique_lock lock(c_.mu_);
    const std::int64_t round = deposit(lock, [&] { c_.views_[slot()] = std::move(mine); });
    if (rank_ != 0) {
      c_.wait(lock, [&] { return c_.round_ != round; });
      return;
    }
    std::vector<InstanceView> all;
    for (auto& v : c_.views_) all.push_back(std::move(*v)), v.reset();
    lock.unlock();
    check(std::move(all));
    lock.lock();
    finish_round();
  }

  void arrive() override {
    std::unique_lock lock(c_.mu_);
    arrival_ = c_.arrival_round_.load();
    if (++c_.arrived_ == size()) {
      c_.arrived_ = 0;
      ++c_.arrival_round_;
      c_.cv_.notify_all();
    }
  }
  bool all_arrived() override { return c_.arrival_round_.load() != arrival_; }
  void wait_all() override {
    std::unique_lock lock(c_.mu_);
    c_.wait(lock, [&] { return c_.arrival_round_.load() != arrival_; });
  }

 private:
  std::size_t slot() const { return static_cast<std::size_t>(rank_); }
  // Deposits this instance's part; instance 0 waits for every part. Returns the round.
  std::int64_t deposit(std::unique_lock<std::mutex>& lock, const std::function<void()>& put) {
    c_.wait(lock, [] { return true; });  // throws once the cluster aborted
    const std::int64_t round = c_.round_;
    put();
    ++c_.deposited_;
    c_.cv_.notify_all();
    if (rank_ == 0) {
      c_.wait(lock, [&] { return c_.deposited_ == size(); });
      c_.deposited_ = 0;
    }
    return round;
  }
  void finish_round() {
    ++c_.round_;
    c_.cv_.notify_all();
  }

  InProcessCluster& c_;
  const std::int32_t rank_;
  std::int64_t arrival_ = 0;
};

class InProcessCluster::Blocks final : public BlockTransport {
 public:
  Blocks(InProcessCluster& c, std::int32_t rank) : c_(c), rank_(rank) {}
  std::size_t slot_bytes() const override { return c_.slot_bytes_; }
  std::int32_t slots() const override { return c_.slots_; }
  std::span<std::byte> local(SlotId slot) override {
    return {at(BlockRef{RankId{rank_}, slot}), c_.slot_bytes_};
  }
  void put_block(const void* src, BlockRef dst) override {
    std::memcpy(at(dst), src, c_.slot_bytes_);
  }
  void get_block(void* dst, BlockRef src) override { std::memcpy(dst, at(src), c_.slot_bytes_); }
  void flush_all() override {}
  void sync() override {}

 private:
  std::byte* at(BlockRef ref) const {
    if (ref.rank.value() < 0 || ref.rank.value() >= c_.instances() || ref.slot.value() < 0 ||
        ref.slot.value() >= c_.slots_) {
      throw InternalError("block transport: no slot " + std::to_string(ref.slot.value()) +
                          " on instance " + std::to_string(ref.rank.value()));
    }
    return c_.pools_[static_cast<std::size_t>(ref.rank.value())].data() +
           static_cast<std::size_t>(ref.slot.value()) * c_.slot_bytes_;
  }

  InProcessCluster& c_;
  const std::int32_t rank_;
};

class InProcessCluster::Exchange final : public AttentionExchange {
 public:
  Exchange(InProcessCluster& c, std::int32_t rank) : c_(c), rank_(rank) {}
  std::int32_t rank() const override { return rank_; }
  std::int32_t size() const override { return c_.instances(); }

  Headers exchange_headers(const Headers& out) override {
    std::unique_lock lock(c_.mu_);
    c_.wait(lock, [] { return true; });
    const std::int64_t round = c_.headers_round_;
    c_.headers_[static_cast<std::size_t>(rank_)] = out;
    if (++c_.headers_in_ == size()) {
      c_.headers_in_ = 0;
      ++c_.headers_round_;
      c_.cv_.notify_all();
    }
    c_.wait(lock, [&] { return c_.headers_round_ != round; });
    // NOTE: nobody writes headers_ again before every instance has read it: the next write
    // comes after the next boundary, which waits for every instance.
    Headers in;
    for (std::int32_t p = 0; p < size(); ++p) {
      const Headers& theirs = c_.headers_[static_cast<std::size_t>(p)];
      const auto it = theirs.find(rank_);
      if (it != theirs.end() && !it->second.empty()) in[p] = it->second;
    }
    return in;
  }

  std::size_t post_recv(std::int32_t peer, int tag, std::span<float> into) override {
    recvs_.push_back(Recv{peer, tag, into, false});
    return recvs_.size() - 1;
  }

  void post_send(std::int32_t peer, int tag, std::span<const float> data) override {
    const std::lock_guard lock(c_.mu_);
    c_.mail_[{rank_, peer, tag}].emplace_back(data.begin(), data.end());
    c_.cv_.notify_all();
  }

  std::size_t wait_any(std::span<const std::size_t> tickets) override {
    std::unique_lock lock(c_.mu_);
    std::optional<std::size_t> got;
    c_.wait(lock, [&] {
      for (std::size_t t : tickets) {
        if (!recvs_.at(t).done && take(recvs_[t])) {
          got = t;
          return true;
        }
      }
      return false;
    });
    return *got;
  }

  void wait_all(std::span<const std::size_t> tickets) override {
    std::unique_lock lock(c_.mu_);
    for (std::size_t t : tickets) {
      c_.wait(lock, [&] { return recvs_.at(t).done || take(recvs_[t]); });
    }
  }

  void wait_sends() override {
    for (const Recv& r : recvs_) {
      if (!r.done) throw InternalError("attention exchange: a receive never waited for");
    }
    recvs_.clear();
  }

 private:
  struct Recv {
    std::int32_t peer;
    int tag;
    std::span<float> into;
    bool done;
  };
  // Under the lock: the receive's message, if it has come.
  bool take(Recv& r) {
    const auto it = c_.mail_.find({r.peer, rank_, r.tag});
    if (it == c_.mail_.end() || it->second.empty()) return false;
    std::vector<float>& m = it->second.front();
    if (m.size() != r.into.size()) {
      throw InternalError("attention exchange: a message of " + std::to_string(m.size()) +
                          " floats for a receive of " + std::to_string(r.into.size()));
    }
    std::copy(m.begin(), m.end(), r.into.begin());
    it->second.pop_front();
    r.done = true;
    return true;
  }

  InProcessCluster& c_;
  const std::int32_t rank_;
  std::vector<Recv> recvs_;
};

InProcessCluster::InProcessCluster(std::int32_t instances, std::size_t slot_bytes,
                                   std::int32_t slots, std::int32_t per_node,
                                   const PoolMemory& memory)
    : slot_bytes_(slot_bytes), slots_(slots), per_node_(std::max<std::int32_t>(1, per_node)) {
  if (instances <= 0 || slots <= 0 || slot_bytes == 0) {
    throw InternalError("in-process cluster: instances, slots and slot bytes must be positive");
  }
  const auto n = static_cast<std::size_t>(instances);
  reports_.resize(n);
  views_.resize(n);
  decisions_.resize(n);
  headers_.resize(n);
  for (std::int32_t r = 0; r < instances; ++r) {
    const std::size_t bytes = slot_bytes * static_cast<std::size_t>(slots);
    if (memory) {
      pools_.push_back(memory(r, bytes));
      if (pools_.back().size() < bytes) throw InternalError("in-process cluster: a pool too small");
    } else {
      own_.emplace_back(bytes);
      pools_.push_back(own_.back());
    }
    controls_.push_back(std::make_unique<Control>(*this, r));
    blocks_.push_back(std::make_unique<Blocks>(*this, r));
    exchanges_.push_back(std::make_unique<Exchange>(*this, r));
  }
}

InProcessCluster::~InProcessCluster() = default;

ControlPort& InProcessCluster::control(std::int32_t rank) {
  return *controls_.at(static_cast<std::size_t>(rank));
}

BlockTransport& InProcessCluster::blocks(std::int32_t rank) {
  return *blocks_.at(static_cast<std::size_t>(rank));
}

AttentionExchange& InProcessCluster::exchange(std::int32_t rank) {
  return *exchanges_.at(static_cast<std::size_t>(rank));
}

const std::byte* InProcessCluster::pool(std::int32_t rank) const {
  return pools_.at(static_cast<std::size_t>(rank)).data();
}

void InProcessCluster::abort() {
  const std::lock_guard lock(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void InProcessCluster::wait(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done) {
  cv_.wait(lock, [&] { return aborted_ || done(); });
  if (aborted_) throw InternalError("in-process cluster: another instance failed");
}

void InProcessCluster::run(const std::function<void(std::int32_t rank)>& body) {
  std::mutex first_mu;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (std::int32_t r = 0; r < instances(); ++r) {
    threads.emplace_back([&, r] {
      try {
        body(r);
      } catch (...) {
        {
          const std::lock_guard lock(first_mu);
          // The first failure is the cause; the others are its echo ("another instance failed").
          if (!first) first = std::current_exception();
        }
        abort();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace infllm
