"""Model families of the zoo; importing this module registers them with timm."""

from .s3r_resnet import s3r_resnet18, s3r_resnet50

__all__ = ["s3r_resnet18", "s3r_resnet50"]
