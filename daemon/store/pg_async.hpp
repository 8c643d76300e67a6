#pragma once
// libpq's asynchronous calls under a deadline of ours: every wait on the
// database (connecting, a statement, a COMMIT) ends by a given time point.
// A blocking PQexec would not: a COMMIT waiting for a synchronous standby's
// acknowledgement ignores statement_timeout and waits as long as the standby
// is gone. A statement still running at its deadline is cancelled (the cancel
// request goes out on a thread of its own, as PQcancel blocks on a connect),
// and the connection is given a short grace period to answer the cancel; one
// that does not answer is abandoned (closed by its owner).

#include <libpq-fe.h>

#include <chrono>
#include <functional>

namespace kpanel::daemon::pg {

using Clock = std::chrono::steady_clock;

// Connects (PQconnectStartParams + PQconnectPoll) until `deadline`. The
// result may be null (out of memory) or not CONNECTION_OK; `timed_out` says
// whether the deadline ended it.
PGconn* connect(const char* const* keywords, const char* const* values, Clock::time_point deadline,
                bool& timed_out) noexcept;

struct Answer {
  // The first failed result, else the last one; null when sending failed or
  // the deadline passed (then PQerrorMessage or timed_out tell why).
  PGresult* result = nullptr;
  bool timed_out = false;  // the deadline passed; the statement was cancelled
  bool abandoned = false;  // ...and the server did not answer the cancel in time
};

// Sends with `send` (PQsendQuery or PQsendQueryParams on `conn`; true when
// sent) and collects every result until `deadline`; past it, cancels and
// waits at most `grace` for the server to confirm.
Answer run(PGconn* conn, const std::function<bool()>& send, Clock::time_point deadline,
           std::chrono::milliseconds grace) noexcept;

}  // namespace kpanel::daemon::pg
