"""dwq.eval.evaluate's ``report["definitions"]``: exactly the definitions of the RPI figures the report holds,
for each combination of the paper, paper-sampled and adaptive protocols (a definition of a figure that was
not computed reads as if it had been)."""
import pytest

from test_evaluate_rpi_subset_figures import _eval, data  # noqa: F401 (data: a fixture)


@pytest.mark.parametrize("protocols,want", [
    (["paper"], {"clean", "paper"}),
    (["paper-sampled"], {"clean", "paper", "paper_sampled"}),
    (["adaptive"], {"clean", "adaptive", "adaptive_worst_case"}),
    (["paper", "adaptive"], {"clean", "paper", "adaptive", "adaptive_worst_case", "best_of_attacks",
                             "worst_case_of_attacks"}),
])
def test_definitions_are_those_of_the_figures_reported(data, protocols, want):  # noqa: F811
    m, x, y = data
    rep = _eval(m, x, y, protocols=protocols, paper_batch=8, per_image=False)
    got = set(rep["definitions"])
    assert got == want, f"protocols {protocols}: definitions {sorted(got)}, expected {sorted(want)}"
