"""dwq._torch_file.torch_load reads torch.save's legacy (non-zip, pickle) format too: older
torchvision weights and checkpoints saved with _use_new_zipfile_serialization=False start with b"\\x80"."""
import torch

from dwq._torch_file import torch_load


def test_a_legacy_format_file_loads(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"w": torch.arange(3.0)}, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    got = torch_load(str(path), RuntimeError, "state_dict", "a torch.save file")
    assert list(got) == ["w"] and torch.equal(got["w"], torch.arange(3.0))
