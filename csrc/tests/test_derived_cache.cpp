// DerivedCache (csrc/common/derived_cache.h), the rule the CUDA GEMM's K-major weight copies follow:
// a value counts only for its key, at the stamp it was made at, while its owner lives; a dead
// owner's entry is dropped at the next lookup of any key.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "common/derived_cache.h"

namespace {

// The owner's weak handle, as c10::weak_intrusive_ptr is used: expired once the owner is gone.
struct Handle {
  std::weak_ptr<int> p;
  bool expired() const { return p.expired(); }
};

struct Key {
  const void* owner;
  int64_t geometry;
  bool operator==(const Key& o) const { return owner == o.owner && geometry == o.geometry; }
};

struct KeyHash {
  std::size_t operator()(const Key& k) const {
    return std::hash<const void*>()(k.owner) ^ (std::hash<int64_t>()(k.geometry) * 31);
  }
};

using Cache = dwq::DerivedCache<Key, KeyHash, Handle, std::string>;

}  // namespace

int main() {
  Cache cache;
  auto a = std::make_shared<int>(1), b = std::make_shared<int>(2);
  const Key ka{a.get(), 8}, kb{b.get(), 8};

  CHECK(!cache.find(ka, 0).has_value(), "an empty cache found a value");
  cache.put(ka, Handle{a}, 0, "a@0");
  CHECK(cache.find(ka, 0).value_or("") == "a@0", "the value just put is not found");
  CHECK(!cache.find(ka, 1).has_value(), "a value made at stamp 0 counted at stamp 1 (owner modified)");
  CHECK(!cache.find(Key{a.get(), 16}, 0).has_value(), "a value made for one geometry counted for another");
  CHECK(!cache.find(kb, 0).has_value(), "another owner's key found a's value");

  cache.put(ka, Handle{a}, 1, "a@1");  // remade after a modification: replaces, never adds
  CHECK(cache.find(ka, 1).value_or("") == "a@1" && !cache.find(ka, 0).has_value(), "the remade value did not replace");
  cache.put(kb, Handle{b}, 5, "b@5");
  CHECK(cache.size() == 2, "expected 2 entries, got %zu", cache.size());

  a.reset();  // a's owner dies: its entry goes at the next lookup of any key, b's stays
  CHECK(cache.find(kb, 5).value_or("") == "b@5", "a live owner's value was lost");
  CHECK(cache.size() == 1, "a dead owner's entry was kept (%zu entries)", cache.size());
  CHECK(!cache.find(ka, 1).has_value(), "a dead owner's value was found");

  // Lookups and puts from several threads (the ops run on any thread): no lost or torn entries.
  std::vector<std::shared_ptr<int>> owners;
  for (int i = 0; i < 64; ++i) owners.push_back(std::make_shared<int>(i));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < 64; i += 4) {
        const Key k{owners[i].get(), 8};
        cache.put(k, Handle{owners[i]}, 7, std::to_string(i));
        for (int r = 0; r < 50; ++r) cache.find(Key{owners[(i + r) % 64].get(), 8}, 7);
      }
    });
  for (auto& th : threads) th.join();
  CHECK(cache.size() == 65, "expected 64 + b's entry after the threads, got %zu", cache.size());
  for (int i = 0; i < 64; ++i)
    CHECK(cache.find(Key{owners[i].get(), 8}, 7).value_or("") == std::to_string(i), "entry %d lost or torn", i);
  owners.clear();
  b.reset();
  CHECK(cache.size() == 0, "dead owners' entries were kept (%zu entries)", cache.size());
  return checks_done("test_derived_cache: passed");
}
