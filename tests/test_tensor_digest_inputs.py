"""dwq._digest.tensor_digest: the SHA-256 covers each tensor's name, dtype, shape and bytes, and not the
order of the dict (a state_dict rebuilt in another order is the same state)."""
import hashlib

import torch

from dwq._digest import tensor_digest


def test_the_digest_changes_with_name_dtype_shape_and_bytes_only():
    w = torch.arange(12, dtype=torch.float32)
    base = tensor_digest({"a": w, "b": torch.ones(2)})
    assert base == tensor_digest({"a": w.clone(), "b": torch.ones(2)})
    assert base == tensor_digest({"b": torch.ones(2), "a": w})  # the dict's order does not count
    changed = {
        "name": {"a2": w, "b": torch.ones(2)},  # (sorted in the same place as "a")
        "shape": {"a": w.view(3, 4), "b": torch.ones(2)},
        "dtype": {"a": w.view(torch.int32), "b": torch.ones(2)},  # (the same bytes)
        "bytes": {"a": w + 1, "b": torch.ones(2)},
    }
    digests = {what: tensor_digest(sd) for what, sd in changed.items()}
    assert all(d != base for d in digests.values()), digests
    # the entries' own boundaries: moving a tensor's bytes from one name to another changes it too
    assert tensor_digest({"a": torch.zeros(2, dtype=torch.uint8), "b": torch.zeros(0, dtype=torch.uint8)}) != \
        tensor_digest({"a": torch.zeros(0, dtype=torch.uint8), "b": torch.zeros(2, dtype=torch.uint8)})


def test_a_name_holding_the_separator_is_not_read_as_two_entries():
    t = torch.arange(3, dtype=torch.uint8)
    two = {"a": torch.zeros(0), "b": t}  # ("a|torch.float32|[0]|" then "b|torch.uint8|[3]|" and t's bytes)
    assert tensor_digest({"a|torch.float32|[0]|b": t}) != tensor_digest(two)
    assert tensor_digest({"a\\|b": t}) != tensor_digest({"a|b": t})  # (and the escape itself is escaped)


def test_names_without_separator_or_backslash_hash_as_files_saved_before_the_escape():
    w = torch.arange(4, dtype=torch.int16).view(2, 2)
    h = hashlib.sha256()
    for name, t in (("a.weight", w), ("b", torch.ones(1))):
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    assert tensor_digest({"b": torch.ones(1), "a.weight": w}) == h.hexdigest()
