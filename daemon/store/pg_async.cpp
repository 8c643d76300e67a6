#include "daemon/store/pg_async.hpp"

#include <poll.h>

#include <array>
#include <cerrno>
#include <climits>
#include <thread>

#include "daemon/store/pg_values.hpp"

namespace kpanel::daemon::pg {
namespace {

enum class Ready { yes, deadline, error };

// Waits until the connection's socket is ready for `events` or `deadline`.
Ready wait_socket(PGconn* conn, short events, Clock::time_point deadline) noexcept {
  for (;;) {
    const int fd = pq().socket(conn);
    if (fd < 0) return Ready::error;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Ready::deadline;
    pollfd entry{.fd = fd, .events = events, .revents = 0};
    const int rc = ::poll(&entry, 1, static_cast<int>(std::min<decltype(left)>(left, INT_MAX)));
    if (rc > 0) return Ready::yes;
    if (rc < 0 && errno != EINTR) return Ready::error;
  }
}

// The cancel request is a connection of its own, which PQcancel makes
// blocking: off this thread, so that a server that does not answer it
// cannot hold a worker. It owns the PGcancel (independent of `conn`).
void cancel_in_background(PGconn* conn) noexcept {
  PGcancel* cancel = pq().get_cancel(conn);
  if (cancel == nullptr) return;
  try {
    std::thread([cancel] {
      std::array<char, 256> error{};
      (void)pq().cancel(cancel, error.data(), static_cast<int>(error.size()));
      pq().free_cancel(cancel);
    }).detach();
  } catch (...) {  // no thread: the connection is abandoned instead
    pq().free_cancel(cancel);
  }
}

enum class Collected { done, deadline, error };

bool succeeded(const PGresult* result) noexcept {
  const ExecStatusType status = pq().result_status(result);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

// Reads results until libpq has none left (done) or the deadline. Keeps the
// first failed result, else the last, in `kept` when `keep`; frees the others.
Collected collect(PGconn* conn, Clock::time_point deadline, bool keep, PGresult*& kept) noexcept {
  for (;;) {
    while (pq().is_busy(conn) == 0) {
      PGresult* result = pq().get_result(conn);
      if (result == nullptr) return Collected::done;
      if (!keep || (kept != nullptr && !succeeded(kept))) {
        pq().clear(result);  // not wanted, or a failure is kept already
      } else {
        if (kept != nullptr) pq().clear(kept);
        kept = result;
      }
    }
    switch (wait_socket(conn, POLLIN, deadline)) {
      case Ready::yes:
        break;
      case Ready::deadline:
        return Collected::deadline;
      case Ready::error:
        return Collected::error;
    }
    if (pq().consume_input(conn) == 0) return Collected::error;  // the connection failed
  }
}

}  // namespace

PGconn* connect(const char* const* keywords, const char* const* values, Clock::time_point deadline,
                bool& timed_out) noexcept {
  timed_out = false;
  PGconn* conn = pq().connect_start_params(keywords, values, 1);
  if (conn == nullptr || pq().status(conn) == CONNECTION_BAD) return conn;
  // Before the first PQconnectPoll, the socket is waited on for writing.
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  for (;;) {
    if (state == PGRES_POLLING_OK || state == PGRES_POLLING_FAILED) return conn;
    switch (wait_socket(conn, state == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline)) {
      case Ready::yes:
      case Ready::error:  // PQconnectPoll reports what went wrong
        break;
      case Ready::deadline:
        timed_out = true;
        return conn;
    }
    state = pq().connect_poll(conn);
  }
}

Answer run(PGconn* conn, const std::function<bool()>& send, Clock::time_point deadline,
           std::chrono::milliseconds grace) noexcept {
  Answer answer;
  try {
    if (!send()) return answer;
  } catch (...) {  // out of memory building the parameters
    return answer;
  }
  switch (collect(conn, deadline, true, answer.result)) {
    case Collected::done:
    case Collected::error:  // the caller sees the broken connection
      return answer;
    case Collected::deadline:
      break;
  }
  if (answer.result != nullptr) pq().clear(answer.result);
  answer.result = nullptr;
  answer.timed_out = true;
  cancel_in_background(conn);
  PGresult* discarded = nullptr;
  // Answered: the connection is idle again and can be reused.
  answer.abandoned = collect(conn, Clock::now() + grace, false, discarded) != Collected::done;
  return answer;
}

}  // namespace kpanel::daemon::pg
