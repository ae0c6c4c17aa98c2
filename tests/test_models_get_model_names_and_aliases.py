"""dwq.models.get_model's name lookup: each zoo key builds its own architecture, every alias of ALIASES
(and the reference's spellings) reaches the constructor it names with the caller's keyword arguments, and
an unknown or non-string name is a ValueError that lists exactly the zoo's keys."""
import re

import pytest

import dwq.models
from dwq.models import ALIASES, MODELS, PreActResNet, ResNet, SmallCNN, WideResNet, get_model

CLASSES = {"small_cnn": SmallCNN, "preact_resnet18": PreActResNet, "wide_resnet34_10": WideResNet,
           "resnet50": ResNet}


@pytest.mark.parametrize("key", sorted(CLASSES))
def test_each_zoo_key_builds_its_own_architecture(key):
    """MODELS[key] is the constructor of that name, and get_model(key) builds its class."""
    assert MODELS[key] is getattr(dwq.models, key), f"MODELS[{key!r}] is {MODELS[key].__name__}"
    model = get_model(key, precisions=[None])
    assert type(model) is CLASSES[key], f"get_model({key!r}) built a {type(model).__name__}"


@pytest.mark.parametrize("name, key", sorted(ALIASES.items()) + [
    ("PreActResNet18", "preact_resnet18"), ("WideResNet32", "wide_resnet34_10"), ("WRN-34-10", "wide_resnet34_10"),
    ("ResNet-50", "resnet50"), ("SmallCNN", "small_cnn"), ("wrn_32", "wide_resnet34_10"),
])
def test_every_alias_reaches_the_constructor_it_names(name, key, monkeypatch):
    """Each alias (and reference spelling) calls its target's constructor, with the keyword arguments given."""
    calls = []
    for k in MODELS:
        monkeypatch.setitem(MODELS, k, lambda _k=k, **kw: calls.append((_k, kw)) or _k)
    assert get_model(name, num_classes=7, width=4) == key
    assert calls == [(key, dict(num_classes=7, width=4))], f"{name!r} called {calls}"


def test_the_aliases_name_only_zoo_keys():
    assert set(ALIASES.values()) <= set(MODELS), sorted(set(ALIASES.values()) - set(MODELS))


@pytest.mark.parametrize("name, message", [
    ("vgg16", "unknown network 'vgg16'; choose one of ['preact_resnet18', 'resnet50', 'small_cnn', "
              "'wide_resnet34_10']"),
    ("", "unknown network ''; choose one of ['preact_resnet18', 'resnet50', 'small_cnn', 'wide_resnet34_10']"),
    (None, "network name must be a string, got None"),
    (18, "network name must be a string, got 18"),
])
def test_unknown_or_non_string_name_is_a_value_error_listing_the_zoo(name, message):
    """The message lists the zoo's keys (not the aliases' or the separator-free forms); a non-string name is
    refused as such, not an AttributeError from str methods."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        get_model(name)
