"""dwq.eval.evaluate's progress callback: ``progress(stage, done, total)`` once before each stage, in the
order they run, ``done`` counting the stages finished before it and ``total`` every stage of the call (the
chosen attack at each evaluated precision, EOT-PGD when the adaptive protocol runs), with and without the
transfer matrix."""
import pytest

from test_evaluate_rpi_subset_figures import SET, _eval, data  # noqa: F401 (data: a fixture)


@pytest.mark.parametrize("protocols,adaptive", [(["paper", "adaptive"], True), (["adaptive"], True),
                                                (["transfer"], False)])
def test_progress_names_each_stage_with_the_stages_done_and_the_total(data, protocols, adaptive):  # noqa: F811
    m, x, y = data
    calls = []
    _eval(m, x, y, protocols=protocols, progress=lambda *a: calls.append(a))
    names = ["clean"] + [f"pgd at {p}" for p in SET] + (["adaptive"] if adaptive else [])
    want = [(name, i, len(names)) for i, name in enumerate(names)]
    assert calls == want, f"progress calls {calls}, expected {want}"
