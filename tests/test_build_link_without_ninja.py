"""The relink of an extension that holds a copy of libstdc++ must happen where ninja is missing too:
torch's BuildExtension then falls back to setuptools' own build, which (without ninja's forced
rebuild) skips an extension whose .so is newer than its sources, so the copy must be removed first."""
import os
import subprocess
import sys
import textwrap

from conftest import shell_script
from test_build_link import PROBE, ROOT, SETUP_DEFS, _setup_namespace, _wrapper, toolchain


@toolchain
def test_a_copy_is_linked_again_when_ninja_is_missing(tmp_path):
    (tmp_path / "probe.cpp").write_text(PROBE)
    no_ninja = tmp_path / "no_ninja"
    shell_script(no_ninja / "ninja", "exit 1\n")  # what torch's is_ninja_available() sees as absent
    script = f"SETUP = {str(ROOT / 'setup.py')!r}\n" + SETUP_DEFS + textwrap.dedent("""
        from setuptools import Extension, setup
        setup(name="probe", ext_modules=[Extension("probe", ["probe.cpp"], language="c++")],
              cmdclass=ns["cmdclass"](), script_args=["-q", "build_ext", "--inplace"])
    """)
    env = dict(os.environ, CXX=_wrapper(tmp_path), PATH=f"{no_ninja}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "linking it again with" in r.stdout, r.stdout
    built = next(tmp_path.glob("probe*.so"))
    assert _setup_namespace()["copied_libstdcxx"](str(built)) == []
    out = subprocess.run([sys.executable, "-c", "import probe; print(probe.fmt(16))"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "v=16", out.stdout + out.stderr
