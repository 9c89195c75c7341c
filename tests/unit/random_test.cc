#include "modelzoo/bus/random.h"

#include <set>

#include <gtest/gtest.h>

namespace modelzoo::bus {
namespace {

TEST(RandomHex, GivesTheDigitsAskedForAllLowercaseHex) {
  for (std::size_t n : {0u, 1u, 6u, 31u, 32u, 64u}) {
    std::string s = random_hex(n);
    EXPECT_EQ(s.size(), n);
    EXPECT_EQ(s.find_first_not_of("0123456789abcdef"), std::string::npos) << s;
  }
}

TEST(RandomHex, TokensDoNotRepeatAndUseEveryDigit) {
  std::set<std::string> seen;
  std::set<char> digits;
  for (int i = 0; i < 1000; ++i) {
    std::string t = random_hex(32);
    EXPECT_TRUE(seen.insert(t).second) << "repeated token " << t;
    digits.insert(t.begin(), t.end());
  }
  EXPECT_EQ(digits.size(), 16u) << "32000 digits and one of the 16 never came: not uniform";
}

}  // namespace
}  // namespace modelzoo::bus
