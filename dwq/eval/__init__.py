"""Robustness evaluation of random-precision models: the protocols (:mod:`dwq.eval.protocols`), one
evaluation run that derives every figure from one run of each attack (:mod:`dwq.eval.run`), the
attacks chosen by name (:mod:`dwq.eval.attacks`), intervals matched to how each figure was drawn
(:mod:`dwq.eval.intervals`) and the report (:mod:`dwq.eval.report`)."""
from dwq.eval.attacks import EVAL_ATTACKS, REFERENCE_PGD, make_attack
from dwq.eval.intervals import acc_ci, cluster_ci, diff_ci, mean_ci, t_quantile
from dwq.eval.protocols import (DEFINITIONS, PerImageRPI, adaptive_protocol, autoattack_rpi, clean_accuracy,
                                matrix_diagonal, paper_protocol, predict, robust_accuracy, rpi_best_of_attacks,
                                rpi_clean, rpi_worst_case_of_attacks, run_at, transfer_matrix)
from dwq.eval.report import pname, save_heatmap, save_json
from dwq.eval.run import PROTOCOLS, evaluate, write_report
from dwq.eval.stages import kernel_identity

__all__ = ["DEFINITIONS", "EVAL_ATTACKS", "PROTOCOLS", "REFERENCE_PGD", "PerImageRPI", "acc_ci", "adaptive_protocol", "autoattack_rpi",
           "clean_accuracy", "cluster_ci", "diff_ci", "evaluate", "kernel_identity", "make_attack", "matrix_diagonal", "mean_ci",
           "paper_protocol", "pname", "predict", "robust_accuracy", "rpi_best_of_attacks", "rpi_clean", "rpi_worst_case_of_attacks", "run_at",
           "save_heatmap", "save_json", "t_quantile", "transfer_matrix", "write_report"]
