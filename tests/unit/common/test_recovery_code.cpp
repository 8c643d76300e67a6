#define BOOST_TEST_MODULE common_recovery_code
#include <array>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/recovery_code.hpp"

using namespace kpanel::common;

namespace {

constexpr std::string_view kAlphabet = "023456789ABCDEFGHJKMNPQRSTUVWXYZ";

// Computed independently (Python hashlib.scrypt, n=4096 r=8 p=1 dklen=32) for
// "7KQ29MXD4T" with the salt bytes 00 01 .. 0F.
constexpr std::string_view kKnownHash =
    "scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$Lh83aLG1mRRvvm6QdSBJ6xWNGS25kV3N2Csj4MqtW6U";
// The same code and salt at n=1024.
constexpr std::string_view kKnownHashLn10 =
    "scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$Lp9IcS0flNJMG2V4J289jAnj0AY1qRGKpdOKRfFP3TE";

std::string normalized(std::string_view typed) {
  const auto n = normalize_recovery_code(typed);
  BOOST_TEST_REQUIRE(n.has_value(), "'" << typed << "'");
  return std::string(n->view());
}

RecoveryCodeError normalize_error(std::string_view typed) {
  const auto n = normalize_recovery_code(typed);
  BOOST_TEST_REQUIRE(!n.has_value(), "'" << typed << "'");
  return n.error();
}

}  // namespace

BOOST_AUTO_TEST_CASE(alphabet_has_32_unambiguous_symbols) {
  BOOST_TEST(kAlphabet.size() == 32U);
  BOOST_TEST(std::set<char>(kAlphabet.begin(), kAlphabet.end()).size() == 32U);
  for (const char c : std::string_view("1IOL"))
    BOOST_TEST(kAlphabet.find(c) == std::string_view::npos);
}

BOOST_AUTO_TEST_CASE(generated_code_format) {
  for (int i = 0; i < 200; ++i) {
    const auto code = generate_recovery_code();
    BOOST_TEST_REQUIRE(code.has_value());
    const std::string_view text = code->view();
    BOOST_TEST_REQUIRE(text.size() == 12U, text);
    BOOST_TEST(text[4] == '-');
    BOOST_TEST(text[9] == '-');
    for (std::size_t j = 0; j < text.size(); ++j) {
      if (j == 4 || j == 9) continue;
      BOOST_TEST(kAlphabet.find(text[j]) != std::string_view::npos, text);
    }
    // What is shown normalizes to itself minus the dashes.
    std::string bare(text);
    bare.erase(9, 1);
    bare.erase(4, 1);
    BOOST_TEST(normalized(text) == bare);
    BOOST_TEST(looks_like_recovery_code(text));
  }
}

BOOST_AUTO_TEST_CASE(codes_are_unique_and_symbols_uniform) {
  constexpr int kCodes = 10'000;
  std::set<std::string> seen;
  std::map<char, int> counts;
  for (int i = 0; i < kCodes; ++i) {
    const auto code = generate_recovery_code();
    BOOST_TEST_REQUIRE(code.has_value());
    seen.emplace(code->view());
    for (const char c : code->view()) {
      if (c != '-') ++counts[c];
    }
  }
  BOOST_TEST(seen.size() == static_cast<std::size_t>(kCodes));
  BOOST_TEST(counts.size() == 32U);  // every symbol used, nothing outside the alphabet
  for (const auto& [symbol, count] : counts) {
    BOOST_TEST(kAlphabet.find(symbol) != std::string_view::npos);
    // 100,000 symbols: 3125 each, sd ~55. A biased mapping (e.g. % 31) shows up far outside.
    BOOST_TEST(count > 2700, "symbol " << symbol);
    BOOST_TEST(count < 3550, "symbol " << symbol);
  }
}

BOOST_AUTO_TEST_CASE(generate_a_set) {
  const auto codes = generate_recovery_codes(10);
  BOOST_TEST_REQUIRE(codes.has_value());
  BOOST_TEST(codes->size() == 10U);
  std::set<std::string> distinct;
  for (const auto& c : *codes) distinct.emplace(c.view());
  BOOST_TEST(distinct.size() == 10U);
  const auto none = generate_recovery_codes(0);
  BOOST_TEST_REQUIRE(none.has_value());
  BOOST_TEST(none->empty());
}

BOOST_AUTO_TEST_CASE(normalization_accepts_what_users_type) {
  BOOST_TEST(normalized("7KQ2-9MXD-4T") == "7KQ29MXD4T");
  BOOST_TEST(normalized("7kq2 9mxd-4t") == "7KQ29MXD4T");
  BOOST_TEST(normalized("7kq29mxd4t") == "7KQ29MXD4T");
  BOOST_TEST(normalized("  7KQ2 - 9MXD - 4T  ") == "7KQ29MXD4T");
  BOOST_TEST(normalized("7-K-Q-2-9-M-X-D-4-T") == "7KQ29MXD4T");
  // O is read as the 0 the code shows.
  BOOST_TEST(normalized("7KQ2-9MXD-4O") == "7KQ29MXD40");
  BOOST_TEST(normalized("o0oo-0000-00") == "0000000000");
}

BOOST_AUTO_TEST_CASE(normalization_rejects_wrong_length) {
  for (const std::string_view bad : {"", "-", "    ", "7KQ2-9MXD-4", "7KQ2-9MXD-4TT", "234567",
                                     "23456789", "7KQ29MXD4T7KQ29MXD4T"}) {
    BOOST_TEST((normalize_error(bad) == RecoveryCodeError::bad_length), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(normalization_rejects_other_characters) {
  for (const std::string_view bad :
       {"7KQ2-9MXD-41", "7KQ2-9MXD-4I", "7KQ2-9MXD-4L", "7kq2-9mxd-4l", "7KQ2_9MXD_4T",
        "7KQ2\t9MXD4T", "7KQ2.9MXD.4T", "7KQ2-9MXD-4!", "7KQ2-9MXD-4\xC3\xA9", "7KQ2+9MXD+4T"}) {
    BOOST_TEST((normalize_error(bad) == RecoveryCodeError::bad_character), "'" << bad << "'");
  }
}

BOOST_AUTO_TEST_CASE(recovery_code_versus_totp_code) {
  BOOST_TEST(looks_like_recovery_code("7kq2 9mxd-4t"));
  BOOST_TEST(looks_like_recovery_code("7KQ29MXD4T"));
  BOOST_TEST(looks_like_recovery_code("7KQ2-9MXD-41"));  // mistyped, still a recovery attempt
  BOOST_TEST(!looks_like_recovery_code("123456"));
  BOOST_TEST(!looks_like_recovery_code("12345678"));
  BOOST_TEST(!looks_like_recovery_code("7KQ2-9MXD-4"));
  BOOST_TEST(!looks_like_recovery_code(""));
}

BOOST_AUTO_TEST_CASE(hash_then_verify) {
  const auto stored = hash_recovery_code("7KQ29MXD4T");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->starts_with("scrypt$ln=12,r=8,p=1$"));
  BOOST_TEST(stored->size() == std::string_view("scrypt$ln=12,r=8,p=1$").size() + 22 + 1 + 43);
  BOOST_TEST(stored->find("7KQ29MXD4T") == std::string::npos);
  BOOST_TEST(verify_recovery_code("7KQ29MXD4T", *stored));
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4U", *stored));
  BOOST_TEST(!verify_recovery_code("7KQ29MXD40", *stored));
  // Only normalized input is ever accepted.
  BOOST_TEST(!verify_recovery_code("7KQ2-9MXD-4T", *stored));
  BOOST_TEST(!verify_recovery_code("7kq29mxd4t", *stored));
}

BOOST_AUTO_TEST_CASE(hashes_are_salted) {
  const auto a = hash_recovery_code("7KQ29MXD4T");
  const auto b = hash_recovery_code("7KQ29MXD4T");
  BOOST_TEST_REQUIRE((a.has_value() && b.has_value()));
  BOOST_TEST(*a != *b);
  BOOST_TEST(a->substr(0, a->rfind('$')) != b->substr(0, b->rfind('$')));  // the salts differ
  BOOST_TEST(verify_recovery_code("7KQ29MXD4T", *a));
  BOOST_TEST(verify_recovery_code("7KQ29MXD4T", *b));
}

BOOST_AUTO_TEST_CASE(hash_needs_a_normalized_code) {
  const auto dashed = hash_recovery_code("7KQ2-9MXD-4T");
  BOOST_TEST_REQUIRE(!dashed.has_value());
  BOOST_TEST((dashed.error() == RecoveryCodeError::bad_length));
  const auto bad = hash_recovery_code("7KQ29MXD4I");
  BOOST_TEST_REQUIRE(!bad.has_value());
  BOOST_TEST((bad.error() == RecoveryCodeError::bad_character));
  const auto lower = hash_recovery_code("7kq29mxd4t");
  BOOST_TEST_REQUIRE(!lower.has_value());
  BOOST_TEST((lower.error() == RecoveryCodeError::bad_character));
}

// The stored format is real scrypt with the parameters it names.
BOOST_AUTO_TEST_CASE(verifies_independently_computed_hashes) {
  BOOST_TEST(verify_recovery_code("7KQ29MXD4T", kKnownHash));
  BOOST_TEST(verify_recovery_code("7KQ29MXD4T", kKnownHashLn10));
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4U", kKnownHash));
}

BOOST_AUTO_TEST_CASE(tampered_hashes_fail) {
  const std::string known(kKnownHash);
  const auto with = [&](std::string_view from, std::string_view to) {
    std::string s = known;
    const auto at = s.find(from);
    BOOST_TEST_REQUIRE(at != std::string::npos);
    s.replace(at, from.size(), to);
    return s;
  };
  const std::size_t hash_at = known.rfind('$') + 1;
  const std::size_t salt_at = known.find("AAEC");
  for (const std::size_t pos : {hash_at, hash_at + 20, known.size() - 2, salt_at, salt_at + 10}) {
    std::string s = known;
    s[pos] = s[pos] == 'A' ? 'B' : 'A';
    BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", s), "changed at " << pos);
  }
  // Other parameters than those used: a different hash.
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", with("ln=12", "ln=11")));
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", with("r=8", "r=7")));
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", with("p=1", "p=2")));
}

BOOST_AUTO_TEST_CASE(malformed_stored_values_are_false) {
  const std::string known(kKnownHash);
  const auto with = [&](std::string_view from, std::string_view to) {
    std::string s = known;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  const std::string salt = "AAECAwQFBgcICQoLDA0ODw";
  for (const std::string& bad : {
           std::string(),
           std::string("scrypt"),
           std::string("scrypt$"),
           std::string("scrypt$ln=12,r=8,p=1$"),
           std::string("scrypt$ln=12,r=8,p=1$") + salt,
           std::string("scrypt$ln=12,r=8,p=1$") + salt + "$",
           known + "$",
           known + "=",
           known + "A",
           known.substr(0, known.size() - 1),
           "$" + known,
           " " + known,
           with("scrypt", "SCRYPT"),
           with("scrypt", "pbkdf2-sha256"),
           with("ln=12", "ln=99"),  // out of bounds: not run at all
           with("ln=12", "ln=9"),
           with("ln=12", "ln=012"),
           with("ln=12", "ln=+12"),
           with("ln=12", "ln="),
           with("ln=12", "n=12"),
           with("r=8", "r=0"),
           with("r=8", "r=17"),
           with("p=1", "p=0"),
           with("p=1", "p=5"),
           with("p=1", "p=1,q=2"),
           with(",r=8", ""),
           with("ln=12,r=8,p=1", "ln=12;r=8;p=1"),
           with("AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0OD"),   // 15.x bytes
           with("AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0ODx"),  // stray low bits
           with("AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0ODw=="),
           with("AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0OD!"),
           with("AAECAwQFBgcICQoLDA0ODw", "AAECAwQFBgcICQoLDA0ODwAA"),
       }) {
    BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", bad), "'" << bad << "'");
  }
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", std::string_view("scrypt\0ln=12", 12)));
}

// Not an assertion on speed (machines differ): records the cost that the
// choice of N=2^12 in recovery_code.cpp was made for (~5-15 ms).
BOOST_AUTO_TEST_CASE(report_hash_cost) {
  const auto start = std::chrono::steady_clock::now();
  constexpr int kRounds = 10;
  for (int i = 0; i < kRounds; ++i) BOOST_TEST(verify_recovery_code("7KQ29MXD4T", kKnownHash));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const auto per_hash =
      std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() / kRounds;
  BOOST_TEST_MESSAGE("scrypt verify: " << per_hash << " us per hash");
  BOOST_TEST(per_hash < 2'000'000);  // a sanity ceiling: not an accidentally huge cost
}

// google-authenticator's scratch codes: 8 digits, the first not 0, hashed and
// checked exactly like a recovery code and never equal to one.
BOOST_AUTO_TEST_CASE(scratch_codes_normalize_hash_and_verify_like_recovery_codes) {
  const auto typed = normalize_scratch_code("1234 5678");
  BOOST_TEST_REQUIRE(typed.has_value());
  BOOST_TEST(typed->view() == "12345678");
  BOOST_TEST(normalize_scratch_code("1234-5678").has_value());
  BOOST_TEST((normalize_scratch_code("01234567").error() == RecoveryCodeError::bad_character));
  BOOST_TEST((normalize_scratch_code("1234567").error() == RecoveryCodeError::bad_length));
  BOOST_TEST((normalize_scratch_code("123456789").error() == RecoveryCodeError::bad_length));
  BOOST_TEST((normalize_scratch_code("1234567A").error() == RecoveryCodeError::bad_character));
  const auto stored = hash_recovery_code("12345678");
  BOOST_TEST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->starts_with("scrypt$ln=12,r=8,p=1$"));
  BOOST_TEST(verify_recovery_code("12345678", *stored));
  BOOST_TEST(!verify_recovery_code("12345679", *stored));
  BOOST_TEST(!hash_recovery_code("01234567").has_value());
  BOOST_TEST(!hash_recovery_code("1234567").has_value());
  BOOST_TEST(!verify_recovery_code("7KQ29MXD4T", *stored));
}
