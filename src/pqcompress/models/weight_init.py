"""Weight initialisation schemes: Keras defaults for the study models, He init for ResNets."""

from __future__ import annotations

from torch import nn

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def init_glorot(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases, the Keras defaults the studies trained with.

    PyTorch's default (uniform with a=sqrt(5)) shrinks activations layer after layer, which
    leaves a 16-layer network without BatchNorm (VGG16 as in the study) untrainable.
    """
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def init_he(model: nn.Module) -> nn.Module:
    """He-normal (fan_out) conv weights, unit/zero BatchNorm, as in He et al. (2016)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
