#pragma once
// Reference counts keyed by a 64-bit number, in one open-addressing table (linear probing): 12
// bytes a slot, at most 3/4 full, no allocation per key. The nftables engine counts the users of
// every hairpin element with it (one per endpoint of the cluster: 300k at 30k services), where a
// std::unordered_map took ~45 bytes a key in nodes and buckets.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace netproxy {

class RefCounts {
 public:
  RefCounts() = default;
  RefCounts(std::initializer_list<std::pair<uint64_t, int>> init);

  // One user more of `key`; returns the count before (0: the key is new).
  int Add(uint64_t key);
  // One user less; returns the count after (0: the key is gone). Absent: nothing, -1.
  int Release(uint64_t key);
  // Users of `key` (0 when absent).
  int Count(uint64_t key) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Removes every key and frees the table.
  void clear();
  // Room for `n` keys without growing.
  void reserve(size_t n);

  // (key, count) of every key, in no particular order.
  class const_iterator {
   public:
    using value_type = std::pair<uint64_t, int>;
    using difference_type = std::ptrdiff_t;
    const_iterator() = default;
    value_type operator*() const { return {t_->keys_[i_], t_->counts_[i_]}; }
    const_iterator& operator++() {
      ++i_;
      Skip();
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    friend class RefCounts;
    const_iterator(const RefCounts* t, size_t i) : t_(t), i_(i) { Skip(); }
    void Skip() {
      while (i_ < t_->counts_.size() && t_->counts_[i_] == 0) ++i_;
    }
    const RefCounts* t_ = nullptr;
    size_t i_ = 0;
  };
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, counts_.size()); }

 private:
  size_t Slot(uint64_t key) const;  // the first slot to probe
  size_t Find(uint64_t key) const;  // its slot, or counts_.size() when absent
  void Rehash(size_t capacity);

  // Slot i holds keys_[i] when counts_[i] > 0 (0 = free).
  std::vector<uint64_t> keys_;
  std::vector<int32_t> counts_;
  size_t size_ = 0;
};

}  // namespace netproxy
