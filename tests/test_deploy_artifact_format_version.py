"""dwq.deploy.read_metadata/load: a format_version that is not the integer 1 is refused, also where it
compares equal to 1 in Python (JSON true, 1.0): a file of another writer's format is not read as ours."""
import pytest
from deploy_models import calibrated, rewrite_metadata

from dwq.deploy import ArtifactError, convert, load, read_metadata, save
from dwq.models import small_cnn
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.fixture(scope="module")
def int_model():
    return convert(calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28)))


@pytest.mark.parametrize("version", [True, 1.0, "1"], ids=["true", "float", "string"])
def test_a_format_version_other_than_the_integer_1_is_refused(int_model, tmp_path, version):
    path = str(tmp_path / "m.safetensors")
    save(int_model, path)
    rewrite_metadata(path, lambda m: m.update(format_version=version))
    with pytest.raises(ArtifactError, match=r"has format version .*reads version 1"):
        read_metadata(path)
    with pytest.raises(ArtifactError, match=r"has format version"):
        load(path)
