// daemon/libpq: libpq loaded at run time for store = postgresql.

#define BOOST_TEST_MODULE libpq
#include <boost/test/unit_test.hpp>

#include "daemon/store/libpq.hpp"

namespace libpq = kpanel::daemon::libpq;

BOOST_AUTO_TEST_CASE(loads_every_function_once) {
  const auto first = libpq::load();
  BOOST_TEST_REQUIRE(first.has_value(), first.error());
  const libpq::Functions& f = **first;
  for (const void* slot :
       {reinterpret_cast<const void*>(f.connectdb_params), reinterpret_cast<const void*>(f.status),
        reinterpret_cast<const void*>(f.error_message), reinterpret_cast<const void*>(f.finish),
        reinterpret_cast<const void*>(f.exec), reinterpret_cast<const void*>(f.exec_params),
        reinterpret_cast<const void*>(f.result_status),
        reinterpret_cast<const void*>(f.result_error_field),
        reinterpret_cast<const void*>(f.result_error_message),
        reinterpret_cast<const void*>(f.clear), reinterpret_cast<const void*>(f.ntuples),
        reinterpret_cast<const void*>(f.getisnull), reinterpret_cast<const void*>(f.getvalue),
        reinterpret_cast<const void*>(f.getlength), reinterpret_cast<const void*>(f.unescape_bytea),
        reinterpret_cast<const void*>(f.freemem), reinterpret_cast<const void*>(f.conninfo_parse),
        reinterpret_cast<const void*>(f.conninfo_free)}) {
    BOOST_TEST(slot != nullptr);
  }
  const auto second = libpq::load();
  BOOST_TEST_REQUIRE(second.has_value());
  BOOST_TEST(*second == *first);
}

BOOST_AUTO_TEST_CASE(the_loaded_library_works) {
  // A connection to nowhere fails through libpq's own code, not ours.
  const libpq::Functions& f = *libpq::load().value();
  const char* const keywords[] = {"host", "port", "connect_timeout", nullptr};
  const char* const values[] = {"127.0.0.1", "1", "1", nullptr};
  PGconn* connection = f.connectdb_params(keywords, values, 0);
  BOOST_TEST_REQUIRE(connection != nullptr);
  BOOST_TEST(f.status(connection) == CONNECTION_BAD);
  BOOST_TEST(std::string(f.error_message(connection)).find("127.0.0.1") != std::string::npos);
  f.finish(connection);
}
