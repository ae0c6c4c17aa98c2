"""Adversarial training with Random Precision Training (see :mod:`dwq.train.loop`),
atomic exactly-resumable checkpoints (:mod:`dwq.train.checkpoint`), DDP helpers
(:mod:`dwq.train.dist`) and bit-reproducible CUDA training (:mod:`dwq.train.determinism`)."""
from .checkpoint import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint
from .loop import (REFERENCE_SELECT_CKPT, TRAIN_ATTACKS, TrainConfig, Trainer, epoch_batches, evaluate_clean_pgd,
                   lowest_precision)
from .determinism import deterministic
from .reference import REFERENCE_CIFAR_TRAIN, reference_alpha

__all__ = ["TrainConfig", "Trainer", "TRAIN_ATTACKS", "epoch_batches", "evaluate_clean_pgd",
           "save_checkpoint", "load_checkpoint", "load_trained_model", "CheckpointError",
           "REFERENCE_CIFAR_TRAIN", "REFERENCE_SELECT_CKPT", "lowest_precision", "reference_alpha", "deterministic"]
