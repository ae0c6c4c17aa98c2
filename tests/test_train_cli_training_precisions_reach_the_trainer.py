"""Which precisions dwq train hands the trainer (dwq.cli.train.cmd_train's TrainConfig.precisions): without
--random-precision-training the --num-bits precision alone, even where the model's set holds others (the
first of the set is not a fallback), and with it the whole set; config.json records them and metrics.jsonl
counts the steps taken at each."""
import json

import pytest
from test_train_cli_config_and_resume_console import TINY

from dwq.cli.main import main


@pytest.mark.parametrize("flags, trained, counts", [
    (["--precisions", "2", "8", "--num-bits", "8"], ["8"], {"8": 1}),
    (["--precisions", "8", "2", "--num-bits", "2"], ["2"], {"2": 1}),
    (["--precisions", "2", "8", "--random-precision-training"], ["2", "8"], None),
])
def test_the_training_precisions_are_num_bits_alone_unless_rpt(tmp_path, flags, trained, counts):
    """config.json's precisions (and the steps counted per precision) are the ones trained at."""
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--attack", "none", "--epochs", "1", "--no-progress"] + flags + TINY) == 0
    config = json.load(open(out / "config.json"))
    assert config["precisions"] == trained, f"{flags}: trained at {config['precisions']}, not {trained}"
    (rec,) = [json.loads(line) for line in open(out / "metrics.jsonl")]
    if counts is not None:
        assert rec["precision_counts"] == counts, rec["precision_counts"]
    assert sum(rec["precision_counts"].values()) == 1 and set(rec["precision_counts"]) <= set(trained)
