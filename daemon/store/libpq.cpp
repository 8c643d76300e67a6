#include "daemon/store/libpq.hpp"

#include <dlfcn.h>

namespace kpanel::daemon::libpq {
namespace {

std::expected<const Functions*, std::string> load_once() {
  // RTLD_NOW: a missing symbol is found here, not in the middle of a login.
  // RTLD_LOCAL: libpq's symbols stay out of the global namespace.
  void* library = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = ::dlerror();
    return std::unexpected(std::string("cannot load ") + kSoname + " (" +
                           (why != nullptr ? why : "unknown error") +
                           "); store = postgresql needs libpq: apt-get install libpq5");
  }
  static Functions functions{};
  std::string missing;
  // dlsym returns void*; POSIX guarantees it converts to a function pointer.
  const auto bind = [&]<typename Pointer>(Pointer& slot, const char* name) {
    void* symbol = ::dlsym(library, name);
    if (symbol == nullptr) {
      missing += missing.empty() ? name : std::string(", ") + name;
      return;
    }
    slot =
        reinterpret_cast<Pointer>(symbol);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  };
  bind(functions.connectdb_params, "PQconnectdbParams");
  bind(functions.status, "PQstatus");
  bind(functions.error_message, "PQerrorMessage");
  bind(functions.finish, "PQfinish");
  bind(functions.exec, "PQexec");
  bind(functions.exec_params, "PQexecParams");
  bind(functions.result_status, "PQresultStatus");
  bind(functions.result_error_field, "PQresultErrorField");
  bind(functions.result_error_message, "PQresultErrorMessage");
  bind(functions.clear, "PQclear");
  bind(functions.ntuples, "PQntuples");
  bind(functions.getisnull, "PQgetisnull");
  bind(functions.getvalue, "PQgetvalue");
  bind(functions.getlength, "PQgetlength");
  bind(functions.unescape_bytea, "PQunescapeBytea");
  bind(functions.freemem, "PQfreemem");
  bind(functions.conninfo_parse, "PQconninfoParse");
  bind(functions.conninfo_free, "PQconninfoFree");
  bind(functions.connect_start_params, "PQconnectStartParams");
  bind(functions.connect_poll, "PQconnectPoll");
  bind(functions.socket, "PQsocket");
  bind(functions.send_query, "PQsendQuery");
  bind(functions.send_query_params, "PQsendQueryParams");
  bind(functions.consume_input, "PQconsumeInput");
  bind(functions.is_busy, "PQisBusy");
  bind(functions.get_result, "PQgetResult");
  bind(functions.get_cancel, "PQgetCancel");
  bind(functions.cancel, "PQcancel");
  bind(functions.free_cancel, "PQfreeCancel");
  if (!missing.empty()) {
    ::dlclose(library);
    return std::unexpected(std::string(kSoname) + " lacks " + missing +
                           "; store = postgresql needs libpq 10 or later");
  }
  return &functions;
}

}  // namespace

std::expected<const Functions*, std::string> load() {
  // A function-local static: initialized once, even with workers racing.
  static const std::expected<const Functions*, std::string> loaded = load_once();
  return loaded;
}

}  // namespace kpanel::daemon::libpq
