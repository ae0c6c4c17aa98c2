"""Adversarial training with Random Precision Training (see :mod:`dwq.train.loop`),
atomic exactly-resumable checkpoints (:mod:`dwq.train.checkpoint`) and DDP helpers
(:mod:`dwq.train.dist`)."""
from .checkpoint import CheckpointError, load_checkpoint, load_trained_model, save_checkpoint
from .loop import TRAIN_ATTACKS, TrainConfig, Trainer, epoch_batches, evaluate_clean_pgd

__all__ = ["TrainConfig", "Trainer", "TRAIN_ATTACKS", "epoch_batches", "evaluate_clean_pgd",
           "save_checkpoint", "load_checkpoint", "load_trained_model", "CheckpointError"]
