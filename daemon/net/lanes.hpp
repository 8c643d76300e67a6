#pragma once
// Where a request's work runs, so that no local user can delay a login.
//
// Two lanes, each its own threads and queues:
// - fast: login_check, a TOTP verify, status, admin list/reset/unlock — a few
//   microseconds of CPU and at most one write each. Root's requests (the PAM
//   module inside sshd, login, su, sudo) are taken before anyone else's, so a
//   queue of other users' requests never stands in front of them. (With the
//   SQLite store root's fast requests do not come here at all: the server
//   answers them on its io threads, daemon/net/server.hpp.)
// - slow: anything that costs a password check (PAM) or scrypt (recovery
//   codes: checking one, or hashing a new set) and enrollment. Bounded per
//   caller: at most one job of a non-root uid queued or running; a second is
//   refused at once (Status::busy), never queued. Bounded overall: a few
//   dozen jobs of other uids; root's jobs are taken first and have their own
//   cap. Its threads run at a lower CPU priority than the fast lane's, so a
//   flood of slow work cannot take the CPU from logins either.
//
// Jobs must not throw (the server's job wraps the handler in a catch-all).

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kpanel::daemon {

enum class Lane : std::uint8_t { fast, slow };

struct LaneLimits {
  unsigned fast_threads = 16;
  unsigned slow_threads = 2;
  // Jobs of non-root uids in the slow lane, queued or running, all together.
  std::size_t slow_capacity = 32;
  // Root's own slow jobs, queued or running (a bound on memory, not fairness:
  // root is every login on the host).
  std::size_t slow_root_capacity = 256;
  // Added to the slow threads' nice value (Linux: per thread).
  int slow_nice = 10;
};

class WorkLanes {
  struct LaneState;

 public:
  // A job's place in its lane's bounds. The job gives it back as soon as its
  // work is done (before it sends the reply: a client that sends its next
  // request the moment it has the answer must find its slot free), or when
  // it ends.
  class Ticket {
   public:
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    Ticket(Ticket&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), state_(other.state_), uid_(other.uid_) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket() { release(); }
    void release() noexcept;

   private:
    friend class WorkLanes;
    Ticket(WorkLanes& owner, LaneState& state, uid_t uid) noexcept
        : owner_(&owner), state_(&state), uid_(uid) {}
    WorkLanes* owner_;
    LaneState* state_;
    uid_t uid_;
  };

  using Job = std::move_only_function<void(Ticket) noexcept>;

  explicit WorkLanes(LaneLimits limits = {});
  WorkLanes(const WorkLanes&) = delete;
  WorkLanes& operator=(const WorkLanes&) = delete;
  WorkLanes(WorkLanes&&) = delete;
  WorkLanes& operator=(WorkLanes&&) = delete;
  ~WorkLanes();  // join()

  // False: refused (the slow lane's bound for this uid or overall, or the
  // lanes are stopping); the job was not run and is destroyed here.
  [[nodiscard]] bool submit(Lane lane, uid_t uid, Job job);

  // Runs what is queued, then stops the threads. Idempotent.
  void join();

  // For tests and the log.
  [[nodiscard]] std::size_t slow_in_flight() const;
  // Jobs queued or running in `lane` (admin stats).
  [[nodiscard]] std::size_t in_flight(Lane lane) const;

 private:
  struct Entry {
    Job job;
    uid_t uid = 0;
  };
  struct LaneState {
    Lane lane = Lane::fast;
    std::deque<Entry> root;               // taken first
    std::deque<Entry> others;             // then these, in arrival order
    std::size_t root_jobs = 0;            // queued or running
    std::size_t other_jobs = 0;           // queued or running
    std::unordered_set<uid_t> busy_uids;  // slow lane: non-root uids with a job
    std::condition_variable ready;
  };

  void run(LaneState& state, bool lower_priority) noexcept;
  void finish(LaneState& state, uid_t uid) noexcept;
  [[nodiscard]] bool admit(LaneState& state, uid_t uid) const;

  LaneLimits limits_;
  mutable std::mutex mutex_;
  bool stopping_ = false;
  LaneState fast_;
  LaneState slow_;
  std::vector<std::jthread> threads_;
};

}  // namespace kpanel::daemon
