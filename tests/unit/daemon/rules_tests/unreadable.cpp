// A user whose stored record does not decode (StoreErrorKind corrupt or key:
// a wrong key_file, a row changed outside the daemon): admin reset clears it
// unread, admin list and admin stats go on for everyone else, and the user's
// own logins stay refused.
#include <memory>
#include <string>

#include "rules_helpers.hpp"

namespace kpanel::daemon::test {
namespace {

struct Broken {
  std::shared_ptr<MemoryStore::State> state;
  Harness h;
  Broken() : Broken(std::make_unique<MemoryBackend>()) {}

 private:
  explicit Broken(std::unique_ptr<MemoryBackend> backend)
      : state(backend->state()), h(std::move(backend)) {}
};

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  return std::ranges::any_of(lines, [&](const std::string& line) { return line.contains(text); });
}

BOOST_AUTO_TEST_CASE(reset_removes_a_record_that_does_not_decode) {
  for (const StoreErrorKind kind : {StoreErrorKind::corrupt, StoreErrorKind::key}) {
    Broken b;
    Harness& h = b.h;
    enroll(h, "bob");
    enroll(h);
    b.state->broken["bob"] = kind;
    // Its own logins and status are refused, never passed.
    BOOST_TEST(login_check(h, "bob").status == Status::store_unavailable);
    BOOST_TEST(h.rules().status(kRoot, "bob", {}).status == Status::store_unavailable);
    h.audit.clear();
    BOOST_TEST(h.rules().admin_reset(kRoot, "bob", {}).status == Status::ok);
    BOOST_TEST(b.state->erases == 1U);
    BOOST_TEST(!b.state->broken.contains("bob"));
    BOOST_TEST(!b.state->records.contains("bob"));
    BOOST_TEST(b.state->records.contains(kUser));  // nobody else's
    const auto reset = h.audit.last(AuditEventKind::reset);
    BOOST_TEST_REQUIRE(reset.has_value());
    BOOST_TEST(reset->user == "bob");
    BOOST_TEST((reset->outcome == Status::ok));
    const auto errors = h.audit.errors();
    BOOST_TEST(errors.size() == 1U);
    BOOST_TEST(mentions(errors, "user 'bob': removed a stored record that could not be read"));
    // bob enrolls again as anyone would.
    const Enrolled again = enroll(h, "bob");
    BOOST_TEST(verify(h, code_at(h, again.secret, 0), "bob").status == Status::ok);
  }
}

// A store that cannot be read or written is a refusal: nothing is erased.
BOOST_AUTO_TEST_CASE(reset_never_erases_when_the_store_fails) {
  for (const StoreErrorKind kind :
       {StoreErrorKind::io, StoreErrorKind::busy, StoreErrorKind::unavailable}) {
    Broken b;
    Harness& h = b.h;
    enroll(h, "bob");
    b.state->broken["bob"] = kind;
    BOOST_TEST(h.rules().admin_reset(kRoot, "bob", {}).status == Status::store_unavailable);
    BOOST_TEST(b.state->erases == 0U);
    BOOST_TEST(b.state->records.contains("bob"));
    const auto reset = h.audit.last(AuditEventKind::reset);
    BOOST_TEST_REQUIRE(reset.has_value());
    BOOST_TEST((reset->store_error == kind));
  }
}

// When the erase itself fails, so does the reset (and the row stays).
BOOST_AUTO_TEST_CASE(reset_fails_when_the_erase_fails) {
  Broken b;
  Harness& h = b.h;
  enroll(h, "bob");
  b.state->broken["bob"] = StoreErrorKind::corrupt;
  auto& store = dynamic_cast<MemoryStore&>(h.store());
  store.fail_with(StoreErrorKind::io);
  BOOST_TEST(h.rules().admin_reset(kRoot, "bob", {}).status == Status::store_unavailable);
  store.fail_with(std::nullopt);
  BOOST_TEST(b.state->broken.contains("bob"));
  BOOST_TEST(b.state->records.contains("bob"));
}

BOOST_AUTO_TEST_CASE(list_and_stats_go_on_past_an_unreadable_record) {
  Broken b;
  Harness& h = b.h;
  enroll(h, "bob");
  enroll(h);
  enroll(h, "carol");
  b.state->broken["bob"] = StoreErrorKind::key;
  h.audit.clear();
  const Response listed = h.rules().admin_list(kRoot, {});
  BOOST_TEST_REQUIRE(listed.status == Status::ok);
  const auto& result = std::get<protocol::AdminListResult>(listed.result);
  BOOST_TEST_REQUIRE(result.users.size() == 2U);
  BOOST_TEST(result.users[0].user == "alice");
  BOOST_TEST(result.users[1].user == "carol");
  BOOST_TEST(result.unreadable == std::vector<std::string>{"bob"});
  BOOST_TEST(h.audit.errors().size() == 1U);
  BOOST_TEST(mentions(h.audit.errors(), "user 'bob' cannot be read"));
  BOOST_TEST(mentions(h.audit.errors(), "kpanel-totp admin reset bob"));

  const Response stats = h.rules().admin_stats(kRoot, {});
  BOOST_TEST_REQUIRE(stats.status == Status::ok);
  BOOST_TEST(std::get<protocol::AdminStatsResult>(stats.result).users_enrolled == 2);

  protocol::AdminListRequest all;
  all.all = true;
  const Response roster = h.rules().admin_list(kRoot, all);
  BOOST_TEST_REQUIRE(roster.status == Status::ok);
  BOOST_TEST(std::get<protocol::AdminListResult>(roster.result).unreadable ==
             std::vector<std::string>{"bob"});

  // Nothing unreadable: nothing named, nothing logged.
  BOOST_TEST(h.rules().admin_reset(kRoot, "bob", {}).status == Status::ok);
  h.audit.clear();
  const Response clean = h.rules().admin_list(kRoot, {});
  BOOST_TEST(std::get<protocol::AdminListResult>(clean.result).unreadable.empty());
  BOOST_TEST(h.audit.errors().empty());
}

// A store failing to read at all still fails the list.
BOOST_AUTO_TEST_CASE(list_fails_when_the_store_fails) {
  Broken b;
  Harness& h = b.h;
  enroll(h, "bob");
  b.state->broken["bob"] = StoreErrorKind::io;
  BOOST_TEST(h.rules().admin_list(kRoot, {}).status == Status::store_unavailable);
  BOOST_TEST(h.rules().admin_stats(kRoot, {}).status == Status::store_unavailable);
}

}  // namespace
}  // namespace kpanel::daemon::test
