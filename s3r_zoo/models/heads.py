"""Heads and decoders that objectives put on top of a zoo encoder (never exported).

Shapes: ``mlp`` maps ``(N, in_dim)`` to ``(N, out_dim)``; ``transposed_decoder`` maps a
ResNet's last feature map ``(N, C, H/32, W/32)`` to ``(N, out_ch, H, W)``.
"""

from __future__ import annotations

from torch import nn

__all__ = ["mlp", "transposed_decoder"]


def mlp(in_dim: int, hidden: int, out_dim: int, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU-Linear (the SimSiam / BYOL projector and predictor); ``last_bn`` adds an affine-free BN."""
    layers = [nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
              nn.Linear(hidden, out_dim, bias=not last_bn)]
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def transposed_decoder(in_ch: int, out_ch: int, width: int = 256) -> nn.Sequential:
    """Five stride-2 transposed convolutions (32x upsampling: undoes the ResNet's stride)."""
    chans = [in_ch, width, width // 2, width // 4, width // 8]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride=2, padding=1),
                   nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
    layers.append(nn.ConvTranspose2d(chans[4], out_ch, 4, stride=2, padding=1))
    return nn.Sequential(*layers)
