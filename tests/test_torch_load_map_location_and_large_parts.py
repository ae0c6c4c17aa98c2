"""dwq._torch_file.torch_load (found by mutation): the map_location check refuses exactly the CUDA
devices the machine lacks and leaves a dict or a function to torch; and the CRC check reads every
part to its end (a damaged byte past the first 4 MiB of a tensor is found too)."""
import pytest
import torch

from dwq._torch_file import torch_load


class LoadError(Exception):
    pass


def _load(path, **kw):
    return torch_load(str(path), LoadError, "test file", "a torch.save file", **kw)


@pytest.mark.parametrize("index, refused", [(0, False), (1, True), (2, True)])
def test_a_cuda_index_past_the_last_device_is_refused_before_the_read(tmp_path, monkeypatch, index, refused):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    loaded = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded.append(k["map_location"]) or {"w": torch.ones(2)})
    if refused:
        with pytest.raises(LoadError, match=rf"map_location='cuda:{index}': this machine has 1 CUDA device\(s\); "):
            _load(path, map_location=f"cuda:{index}")
        assert loaded == []
    else:
        assert list(_load(path, map_location="cuda:0")) == ["w"] and loaded == ["cuda:0"]


@pytest.mark.parametrize("map_location", [{"cuda:0": "cpu"}, lambda storage, loc: storage])
def test_a_dict_or_a_function_map_location_is_torchs_to_interpret(tmp_path, map_location):
    path = tmp_path / "t.pt"
    torch.save({"w": torch.arange(3.0)}, path)
    got = _load(path, map_location=map_location)
    assert torch.equal(got["w"], torch.arange(3.0))


def test_a_damaged_byte_past_the_first_4_mib_of_a_part_is_found(tmp_path):
    path = tmp_path / "big.pt"
    w = torch.zeros(1_500_000)  # 6 MB of float32: one zip part larger than one 4 MiB read
    torch.save({"w": w}, path)
    data = bytearray(path.read_bytes())
    at = bytes(data).find(bytes(w.numpy().tobytes()[:64])) + 5_500_000  # inside w's bytes, past 4 MiB
    assert data[at] == 0
    data[at] = 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError, match=r"big\.pt is corrupt: its part '.*' does not match the CRC"):
        _load(path)
