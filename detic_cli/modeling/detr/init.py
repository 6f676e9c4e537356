"""The original Deformable DETR parameter initialisation (for training from scratch / an ImageNet backbone).

- transformer: every parameter with 2+ dims xavier-uniform; `level_embed` standard normal;
- every MSDeformAttn: sampling_offsets weight 0 and bias = a per-head unit direction (angle 2*pi*h / heads,
  scaled so its larger coordinate is 1) times (point index + 1), the same for every level; attention_weights
  weight and bias 0; value_proj and output_proj xavier-uniform weights and zero biases;
- class heads: one shared initial weight, bias -log((1 - 0.01) / 0.01) (prior probability 0.01); box heads:
  last layer weight and bias 0;
- input projections: conv weights xavier-uniform, biases 0.
The backbone is left as it is (its weights come from the ImageNet checkpoint).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from detic_cli.modeling.detr.deformable_detr import DeformableDETR
from detic_cli.modeling.detr.ms_deform_attn import MSDeformAttn

__all__ = ["init_deformable_detr_", "init_ms_deform_attn_"]

PRIOR_PROB = 0.01


@torch.no_grad()
def init_ms_deform_attn_(attn: MSDeformAttn) -> None:
    """Initial sampling points spread around the reference point, one direction per head."""
    nn.init.constant_(attn.sampling_offsets.weight, 0.0)
    thetas = torch.arange(attn.n_heads, dtype=torch.float32) * (2.0 * math.pi / attn.n_heads)
    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
    grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(attn.n_heads, 1, 1, 2)
    grid = grid.repeat(1, attn.n_levels, attn.n_points, 1)
    grid = grid * torch.arange(1, attn.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
    attn.sampling_offsets.bias.copy_(grid.view(-1))
    nn.init.constant_(attn.attention_weights.weight, 0.0)
    nn.init.constant_(attn.attention_weights.bias, 0.0)
    for proj in (attn.value_proj, attn.output_proj):
        nn.init.xavier_uniform_(proj.weight)
        nn.init.constant_(proj.bias, 0.0)


@torch.no_grad()
def init_deformable_detr_(detr: DeformableDETR) -> None:
    """Re-initialise every non-backbone parameter of `detr` in place, as the original constructors do."""
    transformer = detr.transformer
    heads = {id(p) for m in (detr.class_embed, detr.bbox_embed) for p in m.parameters()}
    for p in transformer.parameters():
        if p.dim() > 1 and id(p) not in heads:
            nn.init.xavier_uniform_(p)
    for module in transformer.modules():
        if isinstance(module, MSDeformAttn):
            init_ms_deform_attn_(module)
    nn.init.normal_(transformer.level_embed)
    bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
    for head in detr.class_embed:  # the original clones one head: every copy starts from the same weights
        head.weight.copy_(detr.class_embed[0].weight)
        nn.init.constant_(head.bias, bias)
    for head in detr.bbox_embed:
        nn.init.constant_(head.layers[-1].weight, 0.0)
        nn.init.constant_(head.layers[-1].bias, 0.0)
    for proj in detr.input_proj:
        nn.init.xavier_uniform_(proj[0].weight, gain=1)
        nn.init.constant_(proj[0].bias, 0.0)
