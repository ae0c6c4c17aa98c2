"""Robustness evaluation of random-precision models: the protocols (:mod:`dwq.eval.protocols`),
the attacks chosen by name (:mod:`dwq.eval.attacks`) and the report (:mod:`dwq.eval.report`)."""
from dwq.eval.attacks import EVAL_ATTACKS, make_attack
from dwq.eval.protocols import (adaptive_protocol, autoattack_rpi, clean_accuracy, matrix_diagonal,
                                paper_protocol, predict, robust_accuracy, rpi_best_of_attacks, run_at,
                                transfer_matrix)
from dwq.eval.report import acc_ci, pname, save_heatmap, save_json

__all__ = ["EVAL_ATTACKS", "acc_ci", "adaptive_protocol", "autoattack_rpi", "clean_accuracy", "make_attack",
           "matrix_diagonal", "paper_protocol", "pname", "predict", "robust_accuracy", "rpi_best_of_attacks",
           "run_at", "save_heatmap", "save_json", "transfer_matrix"]
