"""Crop-flip augmentation of training batches (the CIFAR recipe of the KD papers): each
image padded by 4 pixels, a random crop of its size taken, and flipped left-right half of
the time. Whole batches at once, vectorised.

The draws of a batch come from a generator seeded by (run seed, epoch, step, stream), so
they do not depend on the loader, its workers or a resume: a memory and a stream run with
the same seed augment every batch alike. The padding is black: the normalised value of a
0 pixel, as torchvision's RandomCrop(padding=4) pads before normalising.
"""

from __future__ import annotations

import numpy as np
import torch

PADDING = 4


class CropFlip:
    """Random crop (zero padding of PADDING pixels) and horizontal flip of (B, C, H, W)."""

    def __init__(self, seed: int, mean: list[float], std: list[float]) -> None:
        self.seed = seed & 0xFFFFFFFFFFFFFFFF
        fill = [-m / s for m, s in zip(mean, std, strict=True)]
        self.fill = torch.tensor(fill, dtype=torch.float32)

    def generator(self, epoch: int, step: int, stream: int) -> torch.Generator:
        words = np.random.SeedSequence((self.seed, epoch, step, stream)).generate_state(2)
        return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))

    def __call__(self, x: torch.Tensor, epoch: int, step: int, stream: int = 0
                 ) -> torch.Tensor:
        """`x` augmented: stream 0 is the labelled batch, 1 a transfer batch."""
        generator = self.generator(epoch, step, stream)
        count, channels, height, width = x.shape
        pad = PADDING
        fill = self.fill if len(self.fill) == channels else self.fill[:1].expand(channels)
        padded = fill.to(x.dtype).view(1, channels, 1, 1).expand(
            count, channels, height + 2 * pad, width + 2 * pad).clone()
        padded[:, :, pad:pad + height, pad:pad + width] = x
        top = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator)
        left = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator)
        flip = torch.randint(0, 2, (count, 1), generator=generator).bool()
        rows = top + torch.arange(height)
        across = torch.arange(width)
        cols = left + torch.where(flip, width - 1 - across, across)
        picked = padded.permute(0, 2, 3, 1)[torch.arange(count)[:, None, None],
                                            rows[:, :, None], cols[:, None, :]]
        return picked.permute(0, 3, 1, 2).contiguous()
