#pragma once
// Records for the store tests: one with every field set, and a field-by-field
// comparison that names the field that differs.

#include <string>
#include <string_view>

#include "common/secure_buffer.hpp"
#include "daemon/store/store.hpp"

namespace kpanel::daemon::test {

[[nodiscard]] common::SecureBytes bytes_of(std::string_view text);

// A record with every field set to something other than its default.
[[nodiscard]] UserRecord full_record(const std::string& user);

// Boost.Test checks that `got` equals `want`, field by field.
void check_same(const UserRecord& got, const UserRecord& want);

}  // namespace kpanel::daemon::test
