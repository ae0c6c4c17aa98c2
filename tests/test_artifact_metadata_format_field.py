"""dwq.deploy.read_metadata/load: a safetensors file with 'dwq' metadata of another format (a later
file kind under the same key, another tool's) is refused by its format name, before its version."""
import json

import pytest
import torch

from dwq.deploy import ArtifactError, load, read_metadata


@pytest.mark.parametrize("fmt", ["dwq-other-model", None])
def test_dwq_metadata_of_another_format_is_refused_by_name(tmp_path, fmt):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    meta = {"format_version": 1, "sha256": "0", "model": {}}
    if fmt is not None:
        meta["format"] = fmt
    save_file({"w": torch.zeros(3)}, str(path), metadata={"dwq": json.dumps(meta)})
    msg = rf"other.safetensors is not a dwq integer model \(format {fmt!r}\)"
    with pytest.raises(ArtifactError, match=msg):
        read_metadata(str(path))
    with pytest.raises(ArtifactError, match=msg):
        load(str(path))
