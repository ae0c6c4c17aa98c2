"""Adversarial training with Random Precision Training (see :mod:`dwq.train.loop`; its settings in
:mod:`dwq.train.config`, data order in :mod:`dwq.train.batches`, validation in
:mod:`dwq.train.validation`, the run folder's checks in :mod:`dwq.train.run_folder`), atomic
exactly-resumable checkpoints (:mod:`dwq.train.checkpoint`), DDP helpers (:mod:`dwq.train.dist`),
bit-reproducible CUDA training (:mod:`dwq.train.determinism`) and the reference code's training
(:mod:`dwq.train.reference`)."""
from .batches import epoch_batches
from .checkpoint import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint
from .config import TRAIN_ATTACKS, TrainConfig
from .determinism import deterministic
from .loop import Trainer
from .reference import REFERENCE_CIFAR_TRAIN, lowest_precision, reference_alpha
from .run_folder import REFERENCE_SELECT_CKPT
from .validation import evaluate_clean_pgd

__all__ = ["TrainConfig", "Trainer", "TRAIN_ATTACKS", "epoch_batches", "evaluate_clean_pgd",
           "save_checkpoint", "load_checkpoint", "load_trained_model", "CheckpointError",
           "REFERENCE_CIFAR_TRAIN", "REFERENCE_SELECT_CKPT", "lowest_precision", "reference_alpha", "deterministic"]
