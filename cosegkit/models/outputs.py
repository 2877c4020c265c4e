"""Typed model outputs: one frozen dataclass per model, with the same names across models.

``logits_a`` / ``logits_b`` are the mask logits of the two images of a pair; ``embedding_a`` / ``embedding_b``
the embeddings the metric-learning loss reads (SiameseUNet: the per-pixel embedding map (B, D, H, W) of
IS-Triplet Fig. 1b; CoSegNet: the metric output fs (B, 64) of cosegnet §3.2). Fields are read as attributes;
each output is also a read-only mapping of its fields (``out["logits_a"]``), so the losses, which take any
mapping of named tensors, accept it as they are.

The classes are registered as pytree nodes, so DistributedDataParallel sees the tensors inside them as it saw
those of a dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

from torch import Tensor
from torch.utils import _pytree

__all__ = ["SiameseUNetOutput", "SegmentOutput", "CoSegNetOutput", "CoSegNetBaseOutput", "CoSegNetPrediction"]


class _NamedFields(Mapping):
    """A read-only mapping view of a dataclass's fields, by name."""

    def __getitem__(self, key: str):
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, eq=False)
class SiameseUNetOutput(_NamedFields):
    """SiameseUNet on a pair: 2-channel logits; pixel embeddings (None for the original head, Fig. 1a)."""

    logits_a: Tensor
    logits_b: Tensor
    embedding_a: Tensor | None = None
    embedding_b: Tensor | None = None


@dataclass(frozen=True, eq=False)
class SegmentOutput(_NamedFields):
    """SiameseUNet on one image (it attends to itself): logits and pixel embedding (None: original head)."""

    logits: Tensor
    embedding: Tensor | None = None


@dataclass(frozen=True, eq=False)
class CoSegNetOutput(_NamedFields):
    """CoSegNet on a pair (cosegnet §3.1-3.3): mask logits (B, 1, H, W), metric outputs fs (B, 64), GAP vectors
    fu, and the decision logit (``decision_logit_b``: single-image mode only, the decision from image B alone)."""

    logits_a: Tensor
    logits_b: Tensor
    embedding_a: Tensor
    embedding_b: Tensor
    pooled_a: Tensor
    pooled_b: Tensor
    decision_logit: Tensor
    decision_logit_b: Tensor | None = None


@dataclass(frozen=True, eq=False)
class CoSegNetBaseOutput(_NamedFields):
    """CoSegNet-base on a pair (cosegnet §4.5): mask logits only."""

    logits_a: Tensor
    logits_b: Tensor


@dataclass(frozen=True, eq=False)
class CoSegNetPrediction(_NamedFields):
    """CoSegNet's test-time output (§3.5): gated mask probabilities and the decisions of both sides."""

    masks_a: Tensor
    masks_b: Tensor
    decision: Tensor
    decision_prob: Tensor
    decision_b: Tensor
    decision_prob_b: Tensor


def _register(cls) -> None:
    names = cls._names()
    _pytree.register_pytree_node(
        cls,
        lambda out: ([getattr(out, n) for n in names], None),
        lambda values, _: cls(*values),
        serialized_type_name=f"cosegkit.models.outputs.{cls.__name__}",
    )


for _cls in (SiameseUNetOutput, SegmentOutput, CoSegNetOutput, CoSegNetBaseOutput, CoSegNetPrediction):
    _register(_cls)
