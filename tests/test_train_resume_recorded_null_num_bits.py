"""dwq.cli.train_resume.load_run on a recorded ``num_bits`` null: an older dwq train recorded a fixed
full-precision run so, which now reads as "fp"; in a random-precision (RPT) run the null means that
--num-bits played no part, and it stays null (else the resume would run a fixed full-precision setting)."""
import pytest

from dwq.cli.common import CLIError
from dwq.cli.train_resume import load_run
from test_train_resume_legacy_and_epochs import _history, _legacy


@pytest.mark.parametrize("rpt, want", [(True, None), (False, "fp")])
def test_a_null_num_bits_reads_as_fp_only_in_a_fixed_precision_run(tmp_path, rpt, want):
    """The flags load_run returns: null -> "fp" for a fixed-precision run, null kept for an RPT run."""
    flags = {"epochs": 2, "num_bits": None, "random_precision_training": rpt}
    got = load_run(_legacy(tmp_path / "r", dict(flags)))[1]
    assert got["num_bits"] == want, f"recorded num_bits null with random_precision_training={rpt} read as " \
                                    f"{got['num_bits']!r}, expected {want!r}"


def test_an_rpt_run_recorded_null_is_not_the_fixed_full_precision_run_of_its_config_json(tmp_path):
    """The checkpoint's RPT null and a config.json's "fp" are different runs' flags: refused, named."""
    flags = {"epochs": 2, "num_bits": None, "random_precision_training": True}
    out = _legacy(tmp_path / "r", flags, {"flags": {**flags, "num_bits": "fp"}, "history": _history()})
    with pytest.raises(CLIError, match=r"--num-bits .*\(config.json: fp\)"):
        load_run(out)
