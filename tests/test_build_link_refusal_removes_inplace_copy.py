"""A refused build (a .so that still holds a copy of libstdc++) must leave nothing importable behind:
not the new object in build/, and not the in-place copy an earlier `build_ext --inplace` left in the
source tree, which Python would otherwise go on importing as if the build had worked."""
import sysconfig

from test_build_link import _build_probe, _wrapper, toolchain


@toolchain
def test_a_refused_inplace_build_removes_the_earlier_inplace_copy(tmp_path):
    stale = tmp_path / ("probe" + sysconfig.get_config_var("EXT_SUFFIX"))
    stale.write_bytes(b"an earlier build")
    r = _build_probe(tmp_path, _wrapper(tmp_path), runtime_found=False)
    assert r.returncode != 0 and "would hold its own copy of libstdc++" in r.stderr, r.stdout + r.stderr
    assert not stale.exists()
    assert not list(tmp_path.glob("probe*.so")) and not list(tmp_path.glob("build/lib*/probe*.so"))
