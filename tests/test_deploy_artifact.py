"""dwq.deploy.save/load: safetensors + JSON, no pickle, atomic writes, one-line errors for bad files;
weights stored at exactly their bit width; the bit packing itself."""
import json
import os
import pickle
import struct

import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import ArtifactError, convert, load, read_metadata, save, size_report
from dwq.deploy.bitpack import pack_bits, packed_nbytes, unpack_bits
from dwq.models import QuantPolicy, small_cnn
from dwq.ops import HAS_EXT

needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
SET = [2, 5, (4, 8), 12, None]


@pytest.fixture(scope="module")
def int_model():
    m = calibrated(small_cnn(precisions=SET, width=8, policy=QuantPolicy(classifier=True)), (16, 1, 28, 28))
    return convert(m, info={"network": "small_cnn", "input_size": [1, 28, 28]})


@pytest.fixture
def saved(int_model, tmp_path):
    path = str(tmp_path / "m.safetensors")
    save(int_model, path)
    return path


@pytest.mark.parametrize("bits", range(2, 17))
def test_bitpack_round_trip_at_exact_width(bits):
    g = torch.Generator().manual_seed(bits)
    for n in (0, 1, 7, 8, 9, 1001):
        codes = torch.randint(0, 1 << bits, (n,), generator=g, dtype=torch.int32)
        data = pack_bits(codes, bits)
        assert data.dtype == torch.uint8 and data.numel() == packed_nbytes(n, bits) == (n * bits + 7) // 8
        assert torch.equal(unpack_bits(data, bits, n), codes)
    # the layout: code i at stream bits [i*bits, (i+1)*bits), least significant first
    two = pack_bits(torch.tensor([1, (1 << bits) - 1]), bits)
    stream = sum(int(b) << (8 * i) for i, b in enumerate(two.tolist()))
    assert stream == 1 | (((1 << bits) - 1) << bits)
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(torch.tensor([1 << bits]), bits)


@needs_ext
def test_round_trip_is_exact(int_model, saved):
    loaded = load(saved)
    x = torch.rand(8, 1, 28, 28)
    assert loaded.precisions == int_model.precisions and loaded.info["network"] == "small_cnn"
    for p in SET:
        with torch.no_grad(), dwq.precision(int_model, p), dwq.precision(loaded, p):
            assert torch.equal(int_model(x), loaded(x)), p
    meta = read_metadata(saved)
    assert meta["format"] == "dwq-integer-model" and meta["format_version"] == 1
    assert meta["dwq_version"] == dwq.__version__
    assert meta["model"]["info"]["precisions"] == ["2", "5", "4w8a", "12", "fp"]
    assert meta["model"]["info"]["quantizer"]["rounding"] == "half to even"


@needs_ext
def test_loading_executes_no_pickle(saved, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("pickle used while loading")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load(saved)
    with open(saved, "rb") as f:  # a safetensors file: 8-byte header length, then a JSON header
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    assert "dwq" in header["__metadata__"]


@needs_ext
def test_weights_take_bits_over_32_of_float32(int_model):
    rows = {r["precision"]: r for r in size_report(int_model)}
    layers = 3  # conv2, conv3 and fc are quantized: at most one padding byte each
    for name, bits in (("2", 2), ("5", 5), ("4w8a", 4), ("12", 12)):
        r = rows[name]
        assert r["weight_bytes"] <= bits / 32 * r["float32_weight_bytes"] + layers + 1, r
        assert r["ratio"] == pytest.approx(bits / 32, rel=1e-2)
    assert rows["fp"]["weight_bytes"] == 0 and rows["fp"]["float_layer_bytes"] > rows["2"]["float_layer_bytes"]
    assert rows["2"]["float_checkpoint_bytes"] > 0


@needs_ext
def test_interrupted_write_keeps_the_old_file(int_model, saved, monkeypatch):
    before = open(saved, "rb").read()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        save(int_model, saved)
    assert open(saved, "rb").read() == before
    assert os.listdir(os.path.dirname(saved)) == [os.path.basename(saved)]  # no temporary file left beside it
    monkeypatch.undo()
    load(saved)


@needs_ext
def test_truncated_file_is_a_one_line_error(saved):
    data = open(saved, "rb").read()
    for cut in (4, 100, len(data) - 10):
        with open(saved, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(ArtifactError) as e:
            load(saved)
        assert "\n" not in str(e.value) and saved in str(e.value)


@needs_ext
def test_corrupt_tensor_bytes_are_detected(saved):
    data = bytearray(open(saved, "rb").read())
    data[-5] ^= 0xFF  # inside the last tensor
    open(saved, "wb").write(bytes(data))
    with pytest.raises(ArtifactError, match="corrupt: its tensors do not match the digest"):
        load(saved)


def _rewrite_metadata(path, edit):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(path, framework="pt") as f:
        meta = json.loads(f.metadata()["dwq"])
    edit(meta)
    save_file(load_file(path), path, metadata={"dwq": json.dumps(meta)})


@needs_ext
def test_other_format_version_is_refused(saved):
    _rewrite_metadata(saved, lambda m: m.update(format_version=2, dwq_version="9.9"))
    with pytest.raises(ArtifactError, match="format version 2 .*reads version 1"):
        load(saved)


@needs_ext
def test_not_a_dwq_file(tmp_path):
    from safetensors.torch import save_file

    path = str(tmp_path / "other.safetensors")
    save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(ArtifactError, match="not a dwq integer model"):
        load(path)
    with pytest.raises(ArtifactError, match="does not exist"):
        load(str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a readable safetensors file"):
        load(str(tmp_path / "junk.safetensors"))


@needs_ext
def test_a_torch_checkpoint_or_a_foreign_scalar_tensor_is_a_one_line_error(tmp_path):
    """A checkpoint given where an artifact goes was called a corrupt safetensors file ("header too
    large"); a file with a 0-d tensor crashed the digest with a raw RuntimeError."""
    from safetensors.torch import save_file

    ck = str(tmp_path / "best.pt")
    torch.save({"model": {}}, ck)
    with pytest.raises(ArtifactError, match=r"best.pt is a PyTorch checkpoint \(torch.save\), not a dwq integer model"):
        load(ck)
    scalar = str(tmp_path / "scalar.safetensors")
    meta = {"format": "dwq-integer-model", "format_version": 1, "sha256": "0", "model": {}}
    save_file({"t": torch.zeros(())}, scalar, metadata={"dwq": json.dumps(meta)})
    with pytest.raises(ArtifactError, match="corrupt: its tensors do not match the digest"):
        load(scalar)


@needs_ext
def test_description_that_does_not_fit_its_tensors(saved):
    from dwq.deploy.artifact import _model_digest

    def drop_plan(m):  # a description made consistent again, e.g. by a tool of one's own
        m["model"]["layers"]["conv2"]["plans"].pop()
        m["model_sha256"] = _model_digest(m["model"])

    _rewrite_metadata(saved, drop_plan)
    with pytest.raises(ArtifactError, match="does not fit its tensors"):
        load(saved)


@needs_ext
def test_one_changed_byte_of_the_description_is_refused(saved):
    """The tensors' digest did not cover the layer configs and the program: a padding of 1 flipped to 0
    loaded as another model (logits off by 0.065 of their size). Without the digest (an older file)
    it still loads."""
    raw = open(saved, "rb").read()
    i = raw.index(b'"padding": [1, 1]') if b'"padding": [1, 1]' in raw else raw.index(b'\\"padding\\": [1, 1]')
    j = raw.index(b"1", i)
    open(saved, "wb").write(raw[:j] + b"0" + raw[j + 1:])
    with pytest.raises(ArtifactError, match="its model description .* does not match the digest"):
        load(saved)

    def drop_digest(m):
        del m["model_sha256"]
    _rewrite_metadata(saved, drop_digest)
    assert load(saved) is not None


@needs_ext
def test_a_program_step_with_arguments_its_function_does_not_take_is_refused_at_load(saved):
    def bogus(m):
        step = next(s for s in m["model"]["program"] if "fn" in s)
        step.setdefault("kwargs", {})["bogus"] = 1
        from dwq.deploy.artifact import _model_digest
        m["model_sha256"] = _model_digest(m["model"])

    _rewrite_metadata(saved, bogus)
    with pytest.raises(ArtifactError, match="does not take these arguments: got an unexpected keyword argument 'bogus'"):
        load(saved)


@needs_ext
def test_artifact_paths_that_are_folders_or_in_missing_folders(int_model, tmp_path):
    with pytest.raises(ArtifactError, match="is a directory, not an artifact file"):
        load(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"the folder of .*nowhere/m.safetensors does not exist"):
        save(int_model, str(tmp_path / "nowhere" / "m.safetensors"))


@needs_ext
def test_save_takes_a_pathlib_path_and_names_a_folder_given_as_the_file(int_model, tmp_path):
    """save(model, tmp_path / "m.safetensors") failed with "unsupported operand type(s) for +: 'PosixPath'
    and 'str'" (atomic_open's temporary name, then path + ".tmp"); a folder as the path failed naming the temporary file."""
    path = tmp_path / "m.safetensors"
    save(int_model, path)
    assert load(path).precisions == int_model.precisions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    with pytest.raises(IsADirectoryError, match=f"save: {tmp_path} is a folder; give a file path, e.g. "
                                                f"{tmp_path}/model.safetensors"):
        save(int_model, str(tmp_path))
