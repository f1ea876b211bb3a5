"""Test helpers shared by the model tests: published checkpoint layouts written from the architecture
descriptions (never from our own modules), and buffer randomisation for meaningful round trips."""

from __future__ import annotations

import torch


def randomise_buffers(model: torch.nn.Module, seed: int = 1) -> None:
    """Give BN running stats and latent_avg non-default values so round trips are meaningful."""
    g = torch.Generator().manual_seed(seed)
    for name, buf in model.named_buffers():
        if buf.is_floating_point():
            buf.copy_(torch.rand(buf.shape, generator=g) + (0.5 if name.endswith("running_var") else -0.5))


def bn_layout(prefix: str, c: int, affine: bool = True) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a BatchNorm with ``c`` channels (weight/bias only when affine)."""
    out = {f"{prefix}.running_mean": (c,), f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}
    if affine:
        out.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,)})
    return out


def irse50_trunk_layout(input_nc: int = 3) -> dict[str, tuple[int, ...]]:
    """IR-SE-50 trunk: stem 3x3 conv 64 + BN + PReLU, then 3/4/14/3 IR-SE units at 64/128/256/512 channels.

    The first unit of a stage has a conv1x1+BN shortcut when the width changes (stages 2-4); every
    unit is BN, conv3x3, PReLU, conv3x3, BN, SE(reduction 16, bias-free 1x1 convs fc1/fc2).
    """
    layout = {"input_layer.0.weight": (64, input_nc, 3, 3), **bn_layout("input_layer.1", 64),
              "input_layer.2.weight": (64,)}
    unit = 0
    for c_in, c_out, units in [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)]:
        for j in range(units):
            cin = c_in if j == 0 else c_out
            p = f"body.{unit}"
            if cin != c_out:
                layout[f"{p}.shortcut_layer.0.weight"] = (c_out, cin, 1, 1)
                layout.update(bn_layout(f"{p}.shortcut_layer.1", c_out))
            layout.update(bn_layout(f"{p}.res_layer.0", cin))
            layout[f"{p}.res_layer.1.weight"] = (c_out, cin, 3, 3)
            layout[f"{p}.res_layer.2.weight"] = (c_out,)
            layout[f"{p}.res_layer.3.weight"] = (c_out, c_out, 3, 3)
            layout.update(bn_layout(f"{p}.res_layer.4", c_out))
            layout[f"{p}.res_layer.5.fc1.weight"] = (c_out // 16, c_out, 1, 1)
            layout[f"{p}.res_layer.5.fc2.weight"] = (c_out, c_out // 16, 1, 1)
            unit += 1
    assert unit == 24
    return layout
