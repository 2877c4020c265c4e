"""A content-addressed cache of a frozen encoder's feature maps (the cpu profile's main speed lever).

With the encoder frozen (no gradient, BatchNorm in eval mode) its output for an input tensor never changes, so it
is computed once per distinct input and read back afterwards. The key is a BLAKE2b digest of

    (the encoder's identity: its class, registry name and a digest of every weight and buffer,
     the input tensor's shape, dtype and bytes)

so "keyed by encoder, weights, size and transform" holds by construction: a different image size, a flipped view
or a different normalisation is a different input tensor, hence a different key; a hit returns exactly what the
encoder computed for exactly that tensor. Training only gets hits when its augmentation has few distinct
outcomes (the cpu profile's ``data.augment="flip"``: each training image has two views); evaluation inputs are
deterministic and hit from the second epoch on.

Features are always computed in float32 from a contiguous input, with autocast switched off, so a run under
bf16 autocast (``amp``, ``amp_on_cpu``) reads and writes the same features as a float32 run; a model converted
to channels-last (``channels_last``, ``channels_last_on_cpu``) gets keys of its own, because convolution kernels of
the two weight layouts agree only to rounding (:func:`weight_layout`).

Each input is encoded on its own (a batch of one), so a feature map never depends on which other images shared
its batch: a run resumed in a new process, whose memory cache is empty, recomputes bit-identical features and
exact resume still holds.

Storage: an in-process memory map (shared by every run of the process that uses the same encoder weights, e.g.
all the runs of one notebook), optionally backed by a folder (``directory``) that other processes read: one file
per input, ``<directory>/<encoder digest>/<key[:2]>/<key>.pt``, written atomically and read with
``weights_only=True``. The folder is a cache: deleting it only costs time. It never belongs in git.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

__all__ = ["FeatureCache", "encoder_digest", "tensor_digest", "weight_layout"]


def encoder_digest(encoder: nn.Module) -> str:
    """Hex digest of the encoder's class, name and every parameter and buffer (name, shape, dtype, values)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}:{getattr(encoder, 'name', '')}".encode())
    for name, t in encoder.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)  # 1-D: 0-d tensors cannot be viewed as bytes
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tensor_digest(x: torch.Tensor, salt: str = "") -> str:
    """Hex digest of a tensor's shape, dtype and values (memory layout does not matter)."""
    t = x.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{salt}:{tuple(t.shape)}:{t.dtype}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weight_layout(encoder: nn.Module) -> str:
    """``"channels_last"`` if the encoder's convolution weights are stored channels-last (the trainer's
    ``channels_last`` option converts the whole model), else ``""``. Convolutions pick their kernels by the weights'
    layout as well as the input's, and the kernels of the two layouts agree only to rounding, so the layout salts
    the cache key (``""`` keeps the keys of every cache written before this option existed)."""
    for p in encoder.parameters():
        if p.dim() == 4 and p.shape[-1] * p.shape[-2] > 1:
            return "channels_last" if not p.is_contiguous() else ""
    return ""


# One memory map per encoder digest, shared by every FeatureCache of the process.
_MEMORY: dict[str, dict[str, tuple[torch.Tensor, ...]]] = {}


class FeatureCache:
    """Memoises ``encoder(x)`` per input image for a frozen encoder (see the module docstring).

    Args:
        encoder: the frozen encoder (its weights must not change while the cache is in use).
        directory: optional folder shared between processes; None keeps features in memory only.

    ``cache(x)`` -> the encoder's list of feature maps for the batch ``x`` (B, 3, H, W), computed without
    gradient. ``hits`` / ``misses`` count inputs served from the cache / computed.
    """

    def __init__(self, encoder: nn.Module, directory: str | os.PathLike | None = None):
        self.encoder = encoder
        self.digest = encoder_digest(encoder)
        self.directory = Path(directory) / self.digest if directory is not None else None
        self.memory = _MEMORY.setdefault(self.digest, {})
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pt"

    def _load(self, key: str) -> tuple[torch.Tensor, ...] | None:
        feats = self.memory.get(key)
        if feats is not None or self.directory is None:
            return feats
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            feats = tuple(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # a damaged cache file is recomputed (and rewritten), never trusted
            return None
        self.memory[key] = feats
        return feats

    def _store(self, key: str, feats: tuple[torch.Tensor, ...]) -> None:
        self.memory[key] = feats
        if self.directory is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(list(feats), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        layout = weight_layout(self.encoder)
        per_image = []
        for i in range(x.shape[0]):
            key = tensor_digest(x[i], salt=layout)
            feats = self._load(key)
            if feats is None:
                self.misses += 1
                # Always in float32 on a contiguous input, whatever autocast the caller runs under: a bf16 run
                # must neither store bf16 features under the key of the float32 input nor read them back.
                with torch.autocast(device_type=x.device.type, enabled=False):
                    computed = self.encoder.compute(x[i : i + 1].contiguous())
                feats = tuple(f[0].detach().cpu().contiguous() for f in computed)
                self._store(key, feats)
            else:
                self.hits += 1
            per_image.append(feats)
        return [torch.stack([p[level] for p in per_image]).to(x.device) for level in range(len(per_image[0]))]
