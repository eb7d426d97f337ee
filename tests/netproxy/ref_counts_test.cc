// RefCounts (the hairpin elements' reference counts): against std::map under random adds and
// releases, with deletions inside probe runs and growth.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "netproxy/ref_counts.h"

using netproxy::RefCounts;

namespace {

void CheckSame(const RefCounts& r, const std::map<uint64_t, int>& m) {
  REQUIRE(r.size() == m.size());
  for (const auto& [k, n] : m) REQUIRE(r.Count(k) == n);
  std::map<uint64_t, int> seen;
  for (const auto& [k, n] : r) {
    REQUIRE(n > 0);
    seen[k] = n;
  }
  REQUIRE(seen == m);
}

}  // namespace

TEST_CASE("RefCounts counts users per key") {
  RefCounts r;
  CHECK(r.empty());
  CHECK(r.Count(7) == 0);
  CHECK(r.Release(7) == -1);  // absent
  CHECK(r.Add(7) == 0);       // new
  CHECK(r.Add(7) == 1);
  CHECK(r.Add(0) == 0);  // 0 is a key like any other
  CHECK(r.size() == 2);
  CHECK(r.Release(7) == 1);
  CHECK(r.Release(7) == 0);  // gone
  CHECK(r.Count(7) == 0);
  CHECK(r.Count(0) == 1);
  CHECK(r.size() == 1);
  RefCounts init = {{5, 2}, {6, 1}};
  CHECK(init.Count(5) == 2);
  CHECK(init.Count(6) == 1);
  init.clear();
  CHECK(init.empty());
  CHECK(init.Count(5) == 0);
  CHECK(init.Add(5) == 0);
}

TEST_CASE("RefCounts matches a std::map under random adds and releases") {
  std::mt19937_64 rng(42);
  for (uint64_t range : {uint64_t{20}, uint64_t{300}, uint64_t{5000}}) {
    RefCounts r;
    std::map<uint64_t, int> m;
    // Keys in a small range collide in their probe runs; some share their low bits only.
    for (int step = 0; step < 20000; ++step) {
      uint64_t k = rng() % range;
      if (step % 3 == 0) k <<= 32;
      if (rng() % 5 < 3) {
        int before = m.count(k) ? m[k] : 0;
        REQUIRE(r.Add(k) == before);
        ++m[k];
      } else {
        auto it = m.find(k);
        if (it == m.end()) {
          REQUIRE(r.Release(k) == -1);
        } else {
          REQUIRE(r.Release(k) == it->second - 1);
          if (--it->second == 0) m.erase(it);
        }
      }
      if (step % 997 == 0) CheckSame(r, m);
    }
    CheckSame(r, m);
    // Release everything: the table is empty again and still works.
    for (auto& [k, n] : m) {
      for (int i = n; i > 0; --i) REQUIRE(r.Release(k) == i - 1);
    }
    CHECK(r.empty());
    CHECK(r.begin() == r.end());
    r.reserve(100000);
    CHECK(r.Add(1) == 0);
  }
}
