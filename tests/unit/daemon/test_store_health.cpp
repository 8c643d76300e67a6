#define BOOST_TEST_MODULE daemon store health
#include <boost/test/unit_test.hpp>
#include <string>

#include "daemon/store/store_health.hpp"
#include "support/memory_store.hpp"
#include "support/recording_audit.hpp"

namespace kpanel::daemon {
namespace {

using test::MemoryStore;
using test::RecordingAuditLog;

bool write_one(Store& store) {
  return store
      .update("alice",
              [](UserRecord& record) {
                ++record.failures;
                return true;
              })
      .has_value();
}

bool write_nothing(Store& store) {
  return store.update("alice", [](UserRecord&) { return false; }).has_value();
}

// Regression (test_storage_faults): a full disk logged one error line per
// refused request; now one when it starts failing and one when it recovers.
BOOST_AUTO_TEST_CASE(a_failing_store_is_logged_once_and_its_recovery_once) {
  MemoryStore memory;
  RecordingAuditLog audit;
  LoggedStore store(memory, audit);
  BOOST_TEST(write_one(store));
  BOOST_TEST(audit.errors().empty());

  memory.fail_with(StoreErrorKind::io);
  for (int i = 0; i < 20; ++i) BOOST_TEST(!write_one(store));
  BOOST_REQUIRE_EQUAL(audit.errors().size(), 1U);
  BOOST_TEST(audit.errors()[0].find("state store failed (writing)") != std::string::npos);

  memory.fail_with(std::nullopt);
  BOOST_TEST(write_one(store));
  BOOST_TEST(write_one(store));
  BOOST_REQUIRE_EQUAL(audit.errors().size(), 2U);
  BOOST_TEST(audit.errors()[1].find("recovered (writes work again after 20 failed)") !=
             std::string::npos);

  memory.fail_with(StoreErrorKind::io);  // a new episode is logged again
  BOOST_TEST(!write_one(store));
  BOOST_TEST(audit.errors().size() == 3U);
}

// Admins watching auth.log for refused logins see why: both lines go to
// authpriv too (AuditLog::store_health), not only to the daemon's own log.
BOOST_AUTO_TEST_CASE(failure_and_recovery_are_security_log_lines_too) {
  MemoryStore memory;
  RecordingAuditLog audit;
  LoggedStore store(memory, audit);
  memory.fail_with(StoreErrorKind::io);
  BOOST_TEST(!write_one(store));
  memory.fail_with(std::nullopt);
  BOOST_TEST(write_one(store));
  const auto lines = audit.store_health_lines();
  BOOST_REQUIRE_EQUAL(lines.size(), 2U);
  BOOST_TEST(lines[0].find("state store failed") != std::string::npos);
  BOOST_TEST(lines[1].find("state store recovered") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(reads_and_writes_are_judged_apart) {
  MemoryStore memory;
  RecordingAuditLog audit;
  LoggedStore store(memory, audit);
  memory.fail_with(StoreErrorKind::io);
  BOOST_TEST(!store.load("alice").has_value());
  BOOST_TEST(!store.list().has_value());
  BOOST_TEST(!write_one(store));
  BOOST_TEST(audit.errors().size() == 2U);  // reading, writing
  memory.fail_with(std::nullopt);
  // An update that wrote nothing says nothing about the disk taking writes.
  BOOST_TEST(write_nothing(store));
  BOOST_TEST(store.load("alice").has_value());
  BOOST_REQUIRE_EQUAL(audit.errors().size(), 3U);
  BOOST_TEST(audit.errors()[2].find("recovered (reads") != std::string::npos);
  BOOST_TEST(write_one(store));
  BOOST_TEST(audit.errors().size() == 4U);
}

// An erase is a write: its failure is logged like one, and it working shows
// writes work again.
BOOST_AUTO_TEST_CASE(an_erase_is_judged_as_a_write) {
  MemoryStore memory;
  RecordingAuditLog audit;
  LoggedStore store(memory, audit);
  BOOST_TEST(write_one(store));
  memory.fail_with(StoreErrorKind::io);
  BOOST_TEST(!store.erase("alice").has_value());
  BOOST_REQUIRE_EQUAL(audit.errors().size(), 1U);
  BOOST_TEST(audit.errors()[0].find("failed (writing)") != std::string::npos);
  memory.fail_with(std::nullopt);
  BOOST_TEST(store.erase("alice").has_value());
  BOOST_REQUIRE_EQUAL(audit.errors().size(), 2U);
  BOOST_TEST(audit.errors()[1].find("recovered (writes") != std::string::npos);
  BOOST_TEST(memory.size() == 0U);
}

}  // namespace
}  // namespace kpanel::daemon
