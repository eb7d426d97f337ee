#include "netproxy/ref_counts.h"

#include <algorithm>
#include <bit>

namespace netproxy {

RefCounts::RefCounts(std::initializer_list<std::pair<uint64_t, int>> init) {
  for (const auto& [key, n] : init) {
    for (int i = 0; i < n; ++i) Add(key);
  }
}

size_t RefCounts::Slot(uint64_t key) const {
  // Fibonacci hashing: addresses differ in their low bits, the multiply spreads them.
  const uint64_t h = key * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(h >> (64 - std::countr_zero(counts_.size())));
}

size_t RefCounts::Find(uint64_t key) const {
  const size_t cap = counts_.size();
  if (cap == 0) return 0;
  for (size_t i = Slot(key);; i = (i + 1) & (cap - 1)) {
    if (counts_[i] == 0) return cap;
    if (keys_[i] == key) return i;
  }
}

int RefCounts::Count(uint64_t key) const {
  size_t i = Find(key);
  return i == counts_.size() ? 0 : counts_[i];
}

int RefCounts::Add(uint64_t key) {
  if ((size_ + 1) * 4 > counts_.size() * 3) Rehash(std::max<size_t>(16, counts_.size() * 2));
  const size_t cap = counts_.size();
  size_t i = Slot(key);
  while (counts_[i] != 0 && keys_[i] != key) i = (i + 1) & (cap - 1);
  if (counts_[i] == 0) {
    keys_[i] = key;
    ++size_;
  }
  return counts_[i]++;
}

int RefCounts::Release(uint64_t key) {
  const size_t cap = counts_.size();
  size_t i = Find(key);
  if (i == cap) return -1;
  if (--counts_[i] > 0) return counts_[i];
  --size_;
  // Backward-shift deletion: later keys of the probe run move up into the hole, so that a
  // lookup never stops at a free slot before its key.
  for (size_t j = (i + 1) & (cap - 1); counts_[j] != 0; j = (j + 1) & (cap - 1)) {
    const size_t home = Slot(keys_[j]);
    // j's key may fill the hole at i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    keys_[i] = keys_[j];
    counts_[i] = counts_[j];
    counts_[j] = 0;
    i = j;
  }
  return 0;
}

void RefCounts::clear() {
  keys_ = {};
  counts_ = {};
  size_ = 0;
}

void RefCounts::reserve(size_t n) {
  size_t cap = std::bit_ceil(std::max<size_t>(16, (n * 4 + 2) / 3));
  if (cap > counts_.size()) Rehash(cap);
}

void RefCounts::Rehash(size_t capacity) {
  std::vector<uint64_t> keys = std::move(keys_);
  std::vector<int32_t> counts = std::move(counts_);
  keys_.assign(capacity, 0);
  counts_.assign(capacity, 0);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    size_t j = Slot(keys[i]);
    while (counts_[j] != 0) j = (j + 1) & (capacity - 1);
    keys_[j] = keys[i];
    counts_[j] = counts[i];
  }
}

}  // namespace netproxy
