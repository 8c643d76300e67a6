#include "daemon/net/lanes.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

namespace kpanel::daemon {

WorkLanes::WorkLanes(LaneLimits limits) : limits_(limits) {
  fast_.lane = Lane::fast;
  slow_.lane = Lane::slow;
  threads_.reserve(limits_.fast_threads + limits_.slow_threads);
  for (unsigned i = 0; i < limits_.fast_threads; ++i) {
    threads_.emplace_back([this] { run(fast_, false); });
  }
  for (unsigned i = 0; i < limits_.slow_threads; ++i) {
    threads_.emplace_back([this] { run(slow_, true); });
  }
}

WorkLanes::~WorkLanes() { join(); }

bool WorkLanes::admit(LaneState& state, uid_t uid) const {
  if (state.lane == Lane::fast) {
    return true;  // bounded by the server's connection caps
  }
  if (uid == 0) {
    return state.root_jobs < limits_.slow_root_capacity;
  }
  return state.other_jobs < limits_.slow_capacity && !state.busy_uids.contains(uid);
}

bool WorkLanes::submit(Lane lane, uid_t uid, Job job) {
  LaneState& state = lane == Lane::fast ? fast_ : slow_;
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ || !admit(state, uid)) {
      return false;
    }
    if (uid == 0) {
      state.root.push_back(Entry{std::move(job), uid});
      ++state.root_jobs;
    } else {
      state.others.push_back(Entry{std::move(job), uid});
      ++state.other_jobs;
      if (lane == Lane::slow) {
        state.busy_uids.insert(uid);
      }
    }
  }
  state.ready.notify_one();
  return true;
}

void WorkLanes::run(LaneState& state, bool lower_priority) noexcept {
  if (lower_priority && limits_.slow_nice > 0) {
    // Linux keeps a nice value per thread; best effort (a failure only means
    // slow work competes for the CPU as equals).
    const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    (void)::setpriority(PRIO_PROCESS, tid, limits_.slow_nice);
  }
  std::unique_lock lock(mutex_);
  for (;;) {
    state.ready.wait(lock,
                     [&] { return stopping_ || !state.root.empty() || !state.others.empty(); });
    if (state.root.empty() && state.others.empty()) {
      return;  // stopping, and nothing left to run
    }
    std::deque<Entry>& from = !state.root.empty() ? state.root : state.others;
    Entry entry = std::move(from.front());
    from.pop_front();
    lock.unlock();
    entry.job(Ticket(*this, state, entry.uid));
    entry.job = nullptr;  // its captures (a connection, a request) go here, unlocked
    lock.lock();
  }
}

void WorkLanes::finish(LaneState& state, uid_t uid) noexcept {
  const std::lock_guard lock(mutex_);
  if (uid == 0) {
    --state.root_jobs;
  } else {
    --state.other_jobs;
    state.busy_uids.erase(uid);
  }
}

void WorkLanes::Ticket::release() noexcept {
  if (owner_ != nullptr) {
    std::exchange(owner_, nullptr)->finish(*state_, uid_);
  }
}

void WorkLanes::join() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  fast_.ready.notify_all();
  slow_.ready.notify_all();
  for (std::jthread& thread : threads_) {
    if (thread.joinable()) {
      thread.join();
    }
  }
}

std::size_t WorkLanes::slow_in_flight() const {
  const std::lock_guard lock(mutex_);
  return slow_.root_jobs + slow_.other_jobs;
}

std::size_t WorkLanes::in_flight(Lane lane) const {
  const std::lock_guard lock(mutex_);
  const LaneState& state = lane == Lane::fast ? fast_ : slow_;
  return state.root_jobs + state.other_jobs;
}

}  // namespace kpanel::daemon
