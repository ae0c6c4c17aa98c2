// A thread-safe cache of values derived from objects it does not own: an entry holds a weak handle
// of its owner and the owner's modification stamp when the value was made, and counts only while
// the owner lives and still has that stamp. Torch-free, so the C++ tests check it without a GPU
// (csrc/tests/test_derived_cache.cpp); its user is the CUDA GEMM's K-major weight copy
// (csrc/cuda/qgemm.cu: owner = the packed blob's storage, stamp = its tensor version).
//
// Handle: copyable, with `bool expired() const` (c10::weak_intrusive_ptr). While an entry holds the
// handle, the owner's identity (the key's address) cannot be taken by a new object, so a key that
// matches an entry names that entry's owner, alive or dead. Dead owners' entries are dropped at
// every lookup, so a value outlives its owner only until the next lookup of any key.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace dwq {

template <class Key, class Hash, class Handle, class Value>
class DerivedCache {
 public:
  // The value made from `key`'s owner at `stamp`, if there is one and the owner lives.
  std::optional<Value> find(const Key& key, uint64_t stamp) {
    std::lock_guard<std::mutex> lock(mu_);
    drop_dead();
    const auto it = map_.find(key);
    if (it == map_.end() || it->second.stamp != stamp) return std::nullopt;
    return it->second.value;
  }

  // Keeps `value`, made from `key`'s owner (`owner`) at `stamp`, in place of any older one.
  void put(const Key& key, Handle owner, uint64_t stamp, Value value) {
    std::lock_guard<std::mutex> lock(mu_);
    map_.insert_or_assign(key, Entry{std::move(owner), stamp, std::move(value)});
  }

  // Entries held (dead owners' ones dropped first).
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    drop_dead();
    return map_.size();
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
  }

 private:
  struct Entry {
    Handle owner;
    uint64_t stamp;
    Value value;
  };

  void drop_dead() {
    for (auto it = map_.begin(); it != map_.end();) it = it->second.owner.expired() ? map_.erase(it) : std::next(it);
  }

  std::mutex mu_;
  std::unordered_map<Key, Entry, Hash> map_;
};

}  // namespace dwq
