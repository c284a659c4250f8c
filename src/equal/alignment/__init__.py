"""Contrastive alignment of the embedder on the warm-up extraction (paper: document clustering)."""

from equal.alignment.examples import TrainingExample, build_examples, mine_hard_negatives
from equal.alignment.trainer import align_embedder, require_alignment_extra

__all__ = ["TrainingExample", "align_embedder", "build_examples", "mine_hard_negatives", "require_alignment_extra"]
