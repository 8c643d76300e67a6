// libnss_kpanelbench: the suite's users as accounts, for kpanel-totpd and the
// PAM harness the suite starts (loaded through nss_wrapper's
// NSS_WRAPPER_MODULE_SO_PATH, so the host's NSS setup is not touched).
// "benchNNNNNN" is uid kFirstUid + NNNNNN, and back: computed, not looked up.
// nss_wrapper's own files backend scans its passwd file line by line on every
// call (about 2 ms per getpwnam+getpwuid pair at 100,000 users), which would
// be most of what the suite measures; this answers in constant time.
#include <nss.h>
#include <pwd.h>
#include <sys/types.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace {

constexpr uid_t kFirstUid = 3'000'000;
constexpr uid_t kUsers = 1'000'000;  // bench000000 … bench999999
constexpr gid_t kGid = 3'000'000;    // the group file the suite writes names it
constexpr std::string_view kPrefix = "bench";

// Copies `text` into `buffer` at `used`; nullptr when it does not fit.
char* put(std::string_view text, char* buffer, std::size_t size, std::size_t& used) {
  if (size - used < text.size() + 1) return nullptr;
  char* out = buffer + used;
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  used += text.size() + 1;
  return out;
}

nss_status fill(uid_t index, passwd* entry, char* buffer, std::size_t size, int* errnop) {
  char name[16];
  (void)std::snprintf(name, sizeof name, "bench%06u", static_cast<unsigned>(index));
  std::size_t used = 0;
  entry->pw_name = put(name, buffer, size, used);
  entry->pw_passwd = put("x", buffer, size, used);
  entry->pw_gecos = put("", buffer, size, used);
  entry->pw_dir = put("/nonexistent", buffer, size, used);
  entry->pw_shell = put("/usr/sbin/nologin", buffer, size, used);
  if (entry->pw_name == nullptr || entry->pw_passwd == nullptr || entry->pw_gecos == nullptr ||
      entry->pw_dir == nullptr || entry->pw_shell == nullptr) {
    *errnop = ERANGE;
    return NSS_STATUS_TRYAGAIN;
  }
  entry->pw_uid = kFirstUid + index;
  entry->pw_gid = kGid;
  return NSS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

nss_status _nss_kpanelbench_getpwnam_r(const char* name, passwd* entry, char* buffer,
                                       std::size_t size, int* errnop) {
  const std::string_view text(name);
  if (text.size() != kPrefix.size() + 6 || !text.starts_with(kPrefix)) return NSS_STATUS_NOTFOUND;
  const char* digits = text.data() + kPrefix.size();
  uid_t index = 0;
  const auto [end, error] = std::from_chars(digits, text.data() + text.size(), index);
  if (error != std::errc{} || end != text.data() + text.size() || *digits < '0' || *digits > '9') {
    return NSS_STATUS_NOTFOUND;
  }
  return fill(index, entry, buffer, size, errnop);
}

nss_status _nss_kpanelbench_getpwuid_r(uid_t uid, passwd* entry, char* buffer, std::size_t size,
                                       int* errnop) {
  if (uid < kFirstUid || uid - kFirstUid >= kUsers) return NSS_STATUS_NOTFOUND;
  return fill(uid - kFirstUid, entry, buffer, size, errnop);
}

// No enumeration: nothing the suite runs lists all users.
nss_status _nss_kpanelbench_setpwent(int /*stayopen*/) { return NSS_STATUS_SUCCESS; }
nss_status _nss_kpanelbench_endpwent() { return NSS_STATUS_SUCCESS; }
nss_status _nss_kpanelbench_getpwent_r(passwd* /*entry*/, char* /*buffer*/, std::size_t /*size*/,
                                       int* /*errnop*/) {
  return NSS_STATUS_NOTFOUND;
}

}  // extern "C"
