"""dwq.train.load_trained_model / load_checkpoint on damaged and foreign files: one line naming the
file, what was found and what was expected."""
import pytest
import torch

import dwq
from dwq.models import build_model
from dwq.train import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint

EXTRA = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["2", "4"], "switchable_bn": True,
         "width": 4}


def _checkpoint(path, extra=EXTRA, model=None):
    if model is None:
        model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    save_checkpoint(str(path), {"model": model.state_dict(), "config": {"extra": dict(extra)}, "epoch": 1})
    return str(path)


def _one_line(err):
    return "\n" not in str(err)


def test_a_checkpoint_loads_in_eval_mode_on_the_device(tmp_path):
    model, ck = load_trained_model(_checkpoint(tmp_path / "ok.pt"), device="cpu")
    assert not model.training and dwq.precision_set(model) == [2, 4] and ck["epoch"] == 1


def test_weights_of_another_architecture_name_the_first_differing_tensor(tmp_path):
    path = _checkpoint(tmp_path / "w.pt", extra={**EXTRA, "width": 8})  # weights of width 4
    with pytest.raises(CheckpointError) as e:
        load_trained_model(path)
    msg = str(e.value)
    assert _one_line(msg) and msg.startswith(path) and "width 8" in msg
    assert "in the checkpoint" in msg and "in the model" in msg and "shape [4" in msg, msg


def test_missing_tensor_is_named(tmp_path):
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    sd = model.state_dict()
    del sd["normalize.mean"]
    save_checkpoint(str(tmp_path / "m.pt"), {"model": sd, "config": {"extra": EXTRA}})
    with pytest.raises(CheckpointError, match="missing normalize.mean") as e:
        load_trained_model(str(tmp_path / "m.pt"))
    assert _one_line(e.value)


@pytest.mark.parametrize("extra,expect", [
    ({**EXTRA, "policy": {"bogus": 1}}, "config does not describe a dwq model"),
    ({**EXTRA, "model_precisions": ["zz"]}, "config does not describe a dwq model"),
    ({**EXTRA, "policy": ["first_conv"]}, r"config does not describe a dwq model \(its policy must be a dict"),
])
def test_damaged_config_is_a_checkpoint_error(tmp_path, extra, expect):
    path = _checkpoint(tmp_path / "c.pt", extra=extra)
    with pytest.raises(CheckpointError, match=expect) as e:
        load_trained_model(path)
    assert _one_line(e.value) and str(e.value).startswith(path)


def test_config_that_is_not_a_dict_is_a_checkpoint_error(tmp_path):
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    save_checkpoint(str(tmp_path / "s.pt"), {"model": model.state_dict(), "config": "x"})
    with pytest.raises(CheckpointError, match="its 'config' entry is a str, not a run's config"):
        load_trained_model(str(tmp_path / "s.pt"))
    save_checkpoint(str(tmp_path / "api.pt"), {"model": model.state_dict(), "config": {"extra": {"network": "small_cnn"}}})
    with pytest.raises(CheckpointError, match=r"its config's extra lacks dataset, model_precisions \(dwq train writes"):
        load_trained_model(str(tmp_path / "api.pt"))


def test_a_checkpoint_without_switchable_bn_in_its_extra_reads_it_from_the_weights(tmp_path):
    """TrainConfig.extra documents network, dataset and model_precisions; load_trained_model then built the
    model with plain BN, and a model with every builder's default (switchable BN) did not load back."""
    for sbn in (True, False):
        model, _ = build_model("small_cnn", "mnist5k", [2, 4], sbn, width=4)
        extra = {"network": "small_cnn", "dataset": "mnist5k", "model_precisions": ["2", "4"], "width": 4}
        save_checkpoint(str(tmp_path / "api.pt"), {"model": model.state_dict(), "config": {"extra": extra}})
        loaded, _ = load_trained_model(str(tmp_path / "api.pt"))
        assert loaded.state_dict().keys() == model.state_dict().keys(), sbn


@pytest.mark.parametrize("content,found", [(b"", "found an empty file"), (b"hello", "found a file starting with")])
def test_a_file_that_is_no_torch_save_says_what_it_found(tmp_path, content, found):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=found) as e:
        load_checkpoint(str(tmp_path / "x.pt"))
    assert _one_line(e.value) and "expected a torch.save file" in str(e.value)


def test_a_run_folder_given_as_the_checkpoint_is_named_a_folder(tmp_path):
    """It was 'does not exist', of a folder that exists."""
    with pytest.raises(CheckpointError, match=r"is a folder; give a checkpoint file in it, e\.g\. .*best\.pt"):
        load_trained_model(str(tmp_path))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "none.pt"))


def test_damaged_bytes_inside_a_tensor_are_refused(tmp_path):
    """torch.load does not check the zip's CRCs: a checkpoint with damaged weight bytes loaded as another
    model. Files of before the digest (no model_sha256) still load."""
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    path = _checkpoint(tmp_path / "ok.pt", model=model)
    assert "model_sha256" in torch.load(path, weights_only=True)
    data = bytearray(open(path, "rb").read())
    raw = model.conv2.weight.detach().numpy().tobytes()
    at = data.find(raw)
    assert at > 0
    data[at + 5] ^= 0x40
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its part '.*' does not match the CRC") as e:
        load_trained_model(str(bad))
    assert _one_line(e.value)
    # written again (valid CRCs), other weights under the stored digest: the digest says so
    ck = torch.load(path, weights_only=True)
    ck["model"]["conv2.weight"][0, 0, 0, 0] += 1
    torch.save(ck, bad)
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its model's tensors do not match the digest"):
        load_trained_model(str(bad))
    old = torch.load(path, weights_only=True)
    del old["model_sha256"]
    torch.save(old, tmp_path / "old.pt")
    load_trained_model(str(tmp_path / "old.pt"))


def test_damaged_bytes_in_the_optimizer_state_are_refused(tmp_path):
    """The digest covered the model only: a flipped byte in a momentum buffer of last.pt was resumed
    from silently. state_sha256 covers every other tensor (optimizer, RNG states); files without it load."""
    momentum = torch.randn(257, generator=torch.Generator().manual_seed(3))
    state = {"model": {"w": torch.ones(3)},
             "optimizer": {"state": {0: {"momentum_buffer": momentum}}, "param_groups": []},
             "rng": {"torch": torch.arange(40, dtype=torch.uint8)}, "config": {"extra": dict(EXTRA)}, "epoch": 1}
    path = tmp_path / "last.pt"
    save_checkpoint(str(path), state)
    ck = load_checkpoint(str(path))
    assert torch.equal(ck["optimizer"]["state"][0]["momentum_buffer"], momentum) and "state_sha256" in ck
    data = bytearray(path.read_bytes())
    at = data.find(momentum.numpy().tobytes())
    assert at > 0
    data[at + 9] ^= 0x10
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its part '.*' does not match the CRC"):
        load_checkpoint(str(tmp_path / "bad.pt"))
    raw = torch.load(path, weights_only=True)
    raw["optimizer"]["state"][0]["momentum_buffer"][9] += 1
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its tensors other than the model's \(optimizer, RNG "
                                              r"states\) do not match the digest"):
        load_checkpoint(str(tmp_path / "bad.pt"))
    del ck["state_sha256"]
    torch.save(ck, tmp_path / "old.pt")
    assert load_checkpoint(str(tmp_path / "old.pt"))["epoch"] == 1


def test_a_device_the_machine_lacks_is_named_not_the_file(tmp_path):
    path = _checkpoint(tmp_path / "ok.pt")
    with pytest.raises(CheckpointError, match=r"map_location='cuda:7': this machine has .*CUDA device.*ok.pt was not "
                                              r"read \(load it with map_location='cpu'\)"):
        load_checkpoint(path, map_location="cuda:7")
    with pytest.raises(CheckpointError, match=r"map_location='gpu' is not a device"):
        load_checkpoint(path, map_location="gpu")


def test_a_state_dict_entry_that_is_no_tensor_is_named(tmp_path):
    model, _ = build_model("small_cnn", "mnist5k", [2, 4], True, width=4)
    sd = dict(model.state_dict(), **{"conv1.weight": "x"})
    save_checkpoint(str(tmp_path / "s.pt"), {"model": sd, "config": {"extra": EXTRA}})
    with pytest.raises(CheckpointError, match="conv1.weight is a str, not a tensor") as e:
        load_trained_model(str(tmp_path / "s.pt"))
    assert _one_line(e.value)


def test_a_flipped_bit_outside_the_tensors_or_a_cut_file_is_named(tmp_path):
    """The digests cover tensors only and torch.load checks no CRC: a flipped bit in the config (the ε dwq
    eval takes from the checkpoint) loaded as another value; a cut file said "OSError: Invalid argument"."""
    import struct

    state = {"model": {"w": torch.ones(3)}, "config": {"epsilon": 8 / 255, "extra": dict(EXTRA)}, "epoch": 1}
    path = tmp_path / "last.pt"
    save_checkpoint(str(path), state)
    data = bytearray(path.read_bytes())
    at = data.find(struct.pack(">d", 8 / 255))
    assert at > 0
    data[at + 1] ^= 0x10
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"bad.pt is corrupt: its part '.*data.pkl' does not match the CRC"):
        load_checkpoint(str(tmp_path / "bad.pt"))
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match=r"cut.pt is not a loadable dwq checkpoint \(truncated or damaged: "
                                              r"BadZipFile: .*\)$"):
        load_checkpoint(str(tmp_path / "cut.pt"))


def test_a_file_saved_without_crcs_loads(tmp_path):
    """torch.serialization.set_crc32_options(False) stores CRC 0 for every part; torch.load reads such a
    file, and the CRC check called it corrupt."""
    set_crc = getattr(torch.serialization, "set_crc32_options", None)
    if set_crc is None:
        pytest.skip("this torch has no torch.serialization.set_crc32_options")
    state = {"model": {"w": torch.ones(3)}, "config": {"extra": dict(EXTRA)}, "epoch": 1}
    set_crc(False)
    try:
        save_checkpoint(str(tmp_path / "nocrc.pt"), state)
    finally:
        set_crc(True)
    assert torch.equal(load_checkpoint(str(tmp_path / "nocrc.pt"))["model"]["w"], torch.ones(3))
