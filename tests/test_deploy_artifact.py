"""dwq.deploy.save/load: safetensors + JSON, no pickle, atomic writes, one-line errors for bad files;
weights stored at exactly their bit width; the bit packing itself."""
import json
import os
import pickle
import struct

import pytest
import torch
from deploy_models import calibrated, rewrite_metadata

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
    with pytest.raises(ValueError, match="codes must lie in"):  # (narrowed to int32 first: packed as 3)
        pack_bits(torch.tensor([2**32 + 3]), bits)
    with pytest.raises(ValueError, match="codes must be an integer tensor, got torch.float32"):  # (2.7 packed as 2)
        pack_bits(torch.tensor([2.7]), bits)


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


@needs_ext
def test_other_format_version_is_refused(saved):
    rewrite_metadata(saved, lambda m: m.update(format_version=2, dwq_version="9.9"))
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
    legacy = str(tmp_path / "legacy.pt")
    torch.save({"model": {}}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ArtifactError, match=r"legacy.pt is a PyTorch checkpoint \(torch.save\)"):
        load(legacy)
    scalar = str(tmp_path / "scalar.safetensors")
    meta = {"format": "dwq-integer-model", "format_version": 1, "sha256": "0", "model": {}}
    save_file({"t": torch.zeros(())}, scalar, metadata={"dwq": json.dumps(meta)})
    with pytest.raises(ArtifactError, match="corrupt: its tensors do not match the digest"):
        load(scalar)


@needs_ext
def test_a_truncated_artifact_whose_header_length_starts_with_0x80_is_called_truncated(tmp_path):
    """The first byte of a safetensors file is its header length's lowest; 0x80 there (1 header in 32)
    made a truncated artifact "a PyTorch checkpoint (torch.save)"."""
    from safetensors.torch import save_file

    path = tmp_path / "cut.safetensors"
    for pad in range(64):  # metadata lengths until the header's is 0x80 mod 256
        save_file({"w": torch.zeros(3)}, str(path), metadata={"dwq": "x" * pad})
        raw = path.read_bytes()
        if raw[0] == 0x80:
            break
    assert raw[0] == 0x80 and raw[8:9] == b"{"
    path.write_bytes(raw[:-5])
    with pytest.raises(ArtifactError, match="cut.safetensors is not a readable safetensors file"):
        load(str(path))


@needs_ext
def test_description_that_does_not_fit_its_tensors(saved):
    from dwq.deploy.artifact import _model_digest

    def drop_plan(m):  # a description made consistent again, e.g. by a tool of one's own
        m["model"]["layers"]["conv2"]["plans"].pop()
        m["model_sha256"] = _model_digest(m["model"])

    rewrite_metadata(saved, drop_plan)
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
    rewrite_metadata(saved, drop_digest)
    assert load(saved) is not None


@needs_ext
def test_a_program_step_with_arguments_its_function_does_not_take_is_refused_at_load(saved):
    def bogus(m):
        step = next(s for s in m["model"]["program"] if "fn" in s)
        step.setdefault("kwargs", {})["bogus"] = 1
        from dwq.deploy.artifact import _model_digest
        m["model_sha256"] = _model_digest(m["model"])

    rewrite_metadata(saved, bogus)
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


def _rewrite(path, edit_model=None, edit_tensors=None):
    """Re-saves ``path`` with its description (``edit_model(meta["model"])``) and/or tensors edited and both
    digests recomputed: what any tool of one's own (or an attacker) can write."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from dwq._digest import tensor_digest
    from dwq.deploy.artifact import _model_digest

    with safe_open(path, framework="pt") as f:
        meta = json.loads(f.metadata()["dwq"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit_model:
        edit_model(meta["model"])
    if edit_tensors:
        edit_tensors(tensors)
    meta["sha256"], meta["model_sha256"] = tensor_digest(tensors), _model_digest(meta["model"])
    save_file(tensors, path, metadata={"dwq": json.dumps(meta)})


def _step(m, fn):
    return next(s for s in m["program"] if s.get("fn") == fn)


def _plan(m, layer, key, value):
    m["layers"][layer]["plans"][0][key] = value


def _fill(key, value):
    return lambda t: t[key].fill_(value)


def _other_set(m):  # fc alone without full precision: a set no other layer has
    m["layers"]["fc"]["precisions"].pop()
    m["layers"]["fc"]["plans"].pop()


def _drop_fc_fp_tensors(t):
    for k in [k for k in t if k.startswith("layers.fc.plans.4.")]:
        del t[k]


@needs_ext
@pytest.mark.parametrize("edit_model,edit_tensors,msg", [
    # config values that int()/bool() coerced (relu="no" ran with a ReLU; w_bits=2.9 as 2)
    (lambda m: _plan(m, "fc", "relu", "no"), None, "fc at precision 2: relu must be True or False, got 'no'"),
    (lambda m: _plan(m, "conv3", "float", True), None, "conv3 at precision 2: plan kind does not match the precision"),
    (lambda m: _plan(m, "conv3", "w_bits", 2.9), None,
     "conv3 at precision 2: w_bits must be 2 (the precision's weight bits), got 2.9"),
    (lambda m: _plan(m, "conv3", "a_bits", 1), None, "conv3 at precision 2: a_bits must be 2 (the precision's"),
    (lambda m: _plan(m, "conv2", "out_bits", 99), None, "conv2 at precision 2: out_bits must be 2 (the precision's"),
    # codes emitted at 8 bits where the next layer reads 5-bit codes: ran, silently wrong
    (lambda m: m["layers"]["bn1"]["out_bits"].__setitem__(1, 8), None,
     "bn1 at precision 5: out_bits must be 5 (the precision's activation bits) or null, got 8"),
    (lambda m: m["layers"]["conv3"].update(stride=[0, 0]), None,
     "conv3: stride must be a pair of ints >= 1, got [0, 0]"),
    (lambda m: m["layers"]["conv3"].update(padding=[-5, -5]), None,
     "conv3: padding must be a pair of ints >= 0, got [-5, -5]"),
    (lambda m: m["layers"]["conv1"].update(stride=[1, 0]), None,
     "conv1: stride must be a pair of ints >= 1, got [1, 0]"),
    # scales and zero points the kernels refuse only at the first forward at that precision
    (None, _fill("layers.conv3.plans.0.x_scale", 0),
     "conv3 at precision 2 (x_scale, x_zero_point): scale[0] must be finite and > 0, got 0.0"),
    (None, _fill("layers.conv3.plans.0.x_scale", float("nan")), "(x_scale, x_zero_point): scale[0] must be finite"),
    (None, _fill("layers.conv3.plans.0.x_zero_point", 1000),
     "conv3 at precision 2 (x_scale, x_zero_point): zero_point[0] = 1000 is not a code of 2 bits (0..3)"),
    (None, _fill("layers.conv3.plans.1.w_scale", -1), "conv3 at precision 5 (w_scale, w_zero_point): scale[0] must"),
    (None, _fill("layers.conv2.plans.0.out_zero_point", 1000), "conv2 at precision 2 (out_scale, out_zero_point): "
                                                                "zero_point[0] = 1000 is not a code of 2 bits"),
    (None, _fill("layers.bn1.out_scale", 0), "bn1 at precision 2 (out_scale, out_zero_point): scale[0] must be"),
    (None, _fill("layers.normalize.std", 0), "normalize: mean and std must be finite and std nonzero"),
    # the program
    (lambda m: _step(m, "max_pool2d")["kwargs"].update(kernel_size=0), None,
     r"(max_pool2d): kernel_size must be an int or a pair of ints >= 1, got 0"),
    (lambda m: _step(m, "flatten")["kwargs"].update(start_dim=7), None,
     "(flatten): start_dim must be an int in -4..3 (a value is at most 4-D), got 7"),
    (lambda m: _step(m, "flatten")["kwargs"].update(end_dim=4), None,
     "(flatten): end_dim must be an int in -4..3 (a value is at most 4-D), got 4"),
    # a padding of more than half the window: torch refused it only at the first forward
    (lambda m: _step(m, "max_pool2d")["kwargs"].update(padding=2), None,
     "(max_pool2d): padding 2 must be at most half the kernel size [2, 2]"),
    # half the kernel, not of the dilated window (5 wide): torch refuses kernel 3, dilation 2, padding 2
    (lambda m: _step(m, "max_pool2d")["kwargs"].update(kernel_size=3, dilation=2, padding=2), None,
     "(max_pool2d): padding 2 must be at most half the kernel size [3, 3]"),
    (lambda m: m["program"].append({"out": m["program"][0]["out"], "fn": "relu", "args": [m["program"][0]["out"]]}),
     None, "recomputes 'normalize'"),
    (lambda m: m.update(output="input"), None, "the program's output is its input 'input'"),
    (lambda m: next(s for s in m["program"] if s.get("call") == "conv2")["args"].append("input"), None,
     "calls layer 'conv2' with 2 arguments ['max_pool2d', 'input']; a layer takes 1"),
    (None, lambda t: t.update({"layers.fc.extra": torch.zeros(2)}), "tensors that no layer takes: ['layers.fc.extra']"),
    (_other_set, _drop_fc_fp_tensors, "the model's layers have different precision sets: [2, 5, 4w8a, 12, fp] "
                                      "('layers.bn1', FloatAffine) and [2, 5, 4w8a, 12] ('layers.fc', IntLinear)"),
], ids=["relu_str", "float_plan_at_2", "w_bits_float", "a_bits_1", "out_bits_99", "bn_out_bits_mismatch", "stride_0", "padding_neg",
        "float_conv_stride_0", "x_scale_0", "x_scale_nan", "x_zero_point", "w_scale_neg", "out_zero_point",
        "bn_out_scale_0", "normalize_std_0", "pool_kernel_0", "flatten_dim", "flatten_end_dim_4", "pool_padding_2",
        "pool_dilated_padding_2",
        "step_recomputes", "output_input", "call_arity", "extra_tensor",
        "precision_sets_differ"])
def test_a_description_the_ops_would_refuse_is_refused_at_load(saved, edit_model, edit_tensors, msg):
    """Each loaded (with both digests recomputed) and failed only at a forward, at some precisions, with
    the op's message (or ran: relu="no", w_bits=2.9, codes of the wrong width), or made ``precisions``
    raise; now a one-line ArtifactError naming the layer or step, the field, the value and what was expected."""
    _rewrite(saved, edit_model, edit_tensors)
    with pytest.raises(ArtifactError) as e:
        load(saved)
    assert msg in str(e.value) and "\n" not in str(e.value), str(e.value)


@needs_ext
def test_json_nested_too_deeply_is_a_one_line_error(tmp_path):
    """json.loads raised a bare RecursionError out of load."""
    from safetensors.torch import save_file

    path = str(tmp_path / "deep.safetensors")
    deep = '{"format": "dwq-integer-model", "format_version": 1, "model": ' + "[" * 100000 + "]" * 100000 + "}"
    save_file({"t": torch.zeros(1)}, path, metadata={"dwq": deep})
    with pytest.raises(ArtifactError, match="its dwq metadata is JSON nested too deeply to read"):
        load(path)


@needs_ext
def test_a_declared_float_layer_is_not_allocated_before_its_tensors_are_checked(int_model, saved, monkeypatch):
    """A 60 kB file declaring a 4096 x 4096 float conv cost 590 MB (nn.Conv2d allocated and initialized
    the declared weight) before the shape check refused it. The float layers are now built on the meta
    device and take the file's tensors; a loaded model still copies, moves and round-trips its state."""
    import copy

    from torch import nn

    built = []
    for cls in (nn.Conv2d, nn.Linear):
        orig = cls.reset_parameters
        monkeypatch.setattr(cls, "reset_parameters", lambda self, orig=orig: (built.append(self.weight.device.type),
                                                                              orig(self)))
    _rewrite(saved, lambda m: m["layers"]["conv1"].update(in_channels=4096, out_channels=4096))
    with pytest.raises(ArtifactError, match=r"conv1: tensor 'weight' must be torch.float32 \[4096, 4096, 3, 3\], "
                                            r"got torch.float32 \[8, 1, 3, 3\]"):
        load(saved)
    assert built and set(built) == {"meta"}
    save(int_model, saved)
    m = load(saved)
    assert set(built) == {"meta"} and all(t.device.type == "cpu" for t in m.state_dict().values())
    assert not any(p.requires_grad for p in m.parameters())
    x = torch.rand(3, 1, 28, 28)
    twin = copy.deepcopy(m).to("cpu")
    twin.load_state_dict(int_model.state_dict())
    for p in SET:
        with torch.no_grad(), dwq.precision(m, p), dwq.precision(twin, p), dwq.precision(int_model, p):
            assert torch.equal(m(x), int_model(x)) and torch.equal(twin(x), int_model(x))


@needs_ext
@pytest.mark.parametrize("device,msg", [
    ("gpu", "load: device must be a torch.device or a name such as 'cpu', 'cuda' or 'cuda:0', got 'gpu'"),
    (3.5, "load: device must be a torch.device or a name such as 'cpu', 'cuda' or 'cuda:0', got 3.5"),
    ("cuda:99", "load: device 'cuda:99' is not available here ("),
    # a backend torch was built without raised ModuleNotFoundError; meta failed in the weights' unpacking
    ("hpu", "load: device 'hpu' is not available here ("),
    ("meta", "load: device 'meta' holds no data; give a device that computes"),
])
def test_load_checks_its_device_before_reading_the_file(tmp_path, device, msg):
    """A bad device failed after the whole file was read, with torch's message ("Expected one of cpu,
    cuda, ... device type at start of device string: gpu") or the model's ("cannot be cast to
    torch.float64" for 3.5)."""
    with pytest.raises(ValueError) as e:
        load(str(tmp_path / "missing.safetensors"), device=device)  # checked before the file: no "does not exist"
    assert not isinstance(e.value, ArtifactError) and msg in str(e.value) and "\n" not in str(e.value), str(e.value)
