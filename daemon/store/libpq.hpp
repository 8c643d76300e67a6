#pragma once
// libpq, loaded when the first PostgreSQL store opens instead of linked into
// kpanel-totpd: a host on the default SQLite store then never maps libpq and
// what it pulls in (GSSAPI, LDAP, GnuTLS; ~3.6 MiB of the daemon's RSS).
// The types and constants still come from <libpq-fe.h> (libpq-dev at build
// time); only the functions the store calls go through this table.

#include <libpq-fe.h>

#include <expected>
#include <string>

namespace kpanel::daemon::libpq {

// libpq's functions, without their PQ prefix.
struct Functions {
  decltype(&::PQconnectdbParams) connectdb_params;
  decltype(&::PQstatus) status;
  decltype(&::PQerrorMessage) error_message;
  decltype(&::PQfinish) finish;
  decltype(&::PQexec) exec;
  decltype(&::PQexecParams) exec_params;
  decltype(&::PQresultStatus) result_status;
  decltype(&::PQresultErrorField) result_error_field;
  decltype(&::PQresultErrorMessage) result_error_message;
  decltype(&::PQclear) clear;
  decltype(&::PQntuples) ntuples;
  decltype(&::PQgetisnull) getisnull;
  decltype(&::PQgetvalue) getvalue;
  decltype(&::PQgetlength) getlength;
  decltype(&::PQunescapeBytea) unescape_bytea;
  decltype(&::PQfreemem) freemem;
  decltype(&::PQconninfoParse) conninfo_parse;
  decltype(&::PQconninfoFree) conninfo_free;
  // The asynchronous calls: every wait on the server has a deadline of ours.
  decltype(&::PQconnectStartParams) connect_start_params;
  decltype(&::PQconnectPoll) connect_poll;
  decltype(&::PQsocket) socket;
  decltype(&::PQsendQuery) send_query;
  decltype(&::PQsendQueryParams) send_query_params;
  decltype(&::PQconsumeInput) consume_input;
  decltype(&::PQisBusy) is_busy;
  decltype(&::PQgetResult) get_result;
  decltype(&::PQgetCancel) get_cancel;
  decltype(&::PQcancel) cancel;
  decltype(&::PQfreeCancel) free_cancel;
};

// The shared object loaded (once, thread-safe; never unloaded).
inline constexpr const char* kSoname = "libpq.so.5";

// The table, or why libpq could not be loaded (a sentence naming the file and
// the package to install). Loads on the first call; later calls return the
// first call's answer.
std::expected<const Functions*, std::string> load();

}  // namespace kpanel::daemon::libpq
