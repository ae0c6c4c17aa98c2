"""dwq.deploy.read_metadata/load naming a file that is no safetensors file: a legacy torch.save file of
any pickle protocol 2..5 is a PyTorch checkpoint, and a truncated artifact whose header length reads
like a pickle's first two bytes (0x80, then 2..5) is still called truncated."""
import pytest
import torch

from dwq.deploy import ArtifactError, load


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_legacy_checkpoint_of_pickle_protocol_2_to_5_is_named_a_checkpoint(tmp_path, protocol):
    """Legacy torch.save writes a pickle: 0x80 then the protocol; 5 is the newest torch writes."""
    path = tmp_path / "legacy.pt"
    torch.save({"model": {}}, str(path), _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    assert path.read_bytes()[:2] == bytes([0x80, protocol])
    with pytest.raises(ArtifactError, match=r"legacy.pt is a PyTorch checkpoint \(torch.save\)"):
        load(str(path))


def test_a_truncated_artifact_whose_first_bytes_look_like_a_pickle_is_called_truncated(tmp_path):
    """A header length of 0x280..0x5ff starts the file with 0x80 and 2..5 (a pickle's protocol mark);
    its header's "{" at byte 8 says safetensors, so a truncated one is not "a PyTorch checkpoint"."""
    from safetensors.torch import save_file

    path = tmp_path / "cut.safetensors"
    for pad in range(300, 1000):  # metadata lengths until the header's length is 0x280 (0x80, 0x02)
        save_file({"w": torch.zeros(3)}, str(path), metadata={"dwq": "x" * pad})
        raw = path.read_bytes()
        if raw[0] == 0x80 and 2 <= raw[1] <= 5:
            break
    assert raw[0] == 0x80 and 2 <= raw[1] <= 5 and raw[8:9] == b"{"
    path.write_bytes(raw[:-5])
    with pytest.raises(ArtifactError, match="cut.safetensors is not a readable safetensors file"):
        load(str(path))
