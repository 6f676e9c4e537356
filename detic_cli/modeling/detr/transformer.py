"""The two-stage Deformable DETR transformer: encoder, encoder-side proposals, refining decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from detic_cli.modeling.detr.decoder import DeformableDecoder, DeformableDecoderLayer
from detic_cli.modeling.detr.encoder import DeformableEncoder, DeformableEncoderLayer
from detic_cli.modeling.detr.position_encoding import proposal_position_embedding

__all__ = ["DeformableTransformer", "TransformerOutput", "encoder_proposals", "valid_ratio"]


@dataclass
class TransformerOutput:
    """hs: (layers, N, Q, C) decoder states. init_reference: (N, Q, 4) and inter_references:
    (layers, N, Q, 4) cxcywh boxes in [0, 1]. enc_class: (N, S, classes) logits and enc_coord_unact:
    (N, S, 4) box logits of every encoder position (the two-stage proposals)."""

    hs: torch.Tensor
    init_reference: torch.Tensor
    inter_references: torch.Tensor
    enc_class: torch.Tensor
    enc_coord_unact: torch.Tensor


def valid_ratio(mask: torch.Tensor) -> torch.Tensor:
    """(N, H, W) padding mask (True = padding) -> (N, 2) valid fraction (w, h) of the grid."""
    _, h, w = mask.shape
    valid_h = torch.sum(~mask[:, :, 0], 1)
    valid_w = torch.sum(~mask[:, 0, :], 1)
    return torch.stack([valid_w.float() / w, valid_h.float() / h], -1)


def encoder_proposals(mask_flatten: torch.Tensor, spatial_shapes: list[tuple[int, int]]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """One square proposal per encoder cell: centre of the cell, side 0.05 * 2**level (of the valid area).

    mask_flatten: (N, S) True on padding. Returns (proposals (N, S, 4) cxcywh logits, +inf where
    invalid; invalid (N, S, 1) bool: padding, or any coordinate outside (0.01, 0.99)).
    """
    n = mask_flatten.shape[0]
    device = mask_flatten.device
    proposals, start = [], 0
    for level, (h, w) in enumerate(spatial_shapes):
        mask = mask_flatten[:, start:start + h * w].view(n, h, w)
        valid_h = torch.sum(~mask[:, :, 0], 1)
        valid_w = torch.sum(~mask[:, 0, :], 1)
        grid_y, grid_x = torch.meshgrid(torch.linspace(0, h - 1, h, dtype=torch.float32, device=device),
                                        torch.linspace(0, w - 1, w, dtype=torch.float32, device=device),
                                        indexing="ij")
        grid = torch.stack([grid_x, grid_y], -1)
        scale = torch.stack([valid_w, valid_h], 1).view(n, 1, 1, 2)
        grid = (grid.unsqueeze(0).expand(n, -1, -1, -1) + 0.5) / scale
        wh = torch.ones_like(grid) * 0.05 * (2.0 ** level)
        proposals.append(torch.cat((grid, wh), -1).view(n, -1, 4))
        start += h * w
    proposals_t = torch.cat(proposals, 1)
    valid = ((proposals_t > 0.01) & (proposals_t < 0.99)).all(-1, keepdim=True)
    proposals_t = torch.log(proposals_t / (1 - proposals_t))
    invalid = mask_flatten.unsqueeze(-1) | ~valid
    return proposals_t.masked_fill(invalid, float("inf")), invalid


class DeformableTransformer(nn.Module):
    """Keys: `encoder.*`, `decoder.*`, `level_embed` (L, C), `enc_output`, `enc_output_norm`, `pos_trans`
    (2C -> 2C) and `pos_trans_norm`. The decoder's shared `class_embed`/`bbox_embed` (one more than
    decoder layers) are attached by the detector; the last pair scores and regresses the proposals.
    """

    def __init__(self, *, d_model: int = 256, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 1024, dropout: float = 0.1,
                 num_feature_levels: int = 4, dec_n_points: int = 4, enc_n_points: int = 4,
                 two_stage_num_proposals: int = 300) -> None:
        super().__init__()
        self.d_model = d_model
        self.two_stage_num_proposals = two_stage_num_proposals
        self.encoder = DeformableEncoder(DeformableEncoderLayer(
            d_model=d_model, d_ffn=dim_feedforward, dropout=dropout, n_levels=num_feature_levels, n_heads=nhead,
            n_points=enc_n_points), num_encoder_layers)
        self.decoder = DeformableDecoder(DeformableDecoderLayer(
            d_model=d_model, d_ffn=dim_feedforward, dropout=dropout, n_levels=num_feature_levels, n_heads=nhead,
            n_points=dec_n_points), num_decoder_layers)
        self.level_embed = nn.Parameter(torch.zeros(num_feature_levels, d_model))
        self.enc_output = nn.Linear(d_model, d_model)
        self.enc_output_norm = nn.LayerNorm(d_model)
        self.pos_trans = nn.Linear(d_model * 2, d_model * 2)
        self.pos_trans_norm = nn.LayerNorm(d_model * 2)

    def _flatten(self, srcs: list[torch.Tensor], masks: list[torch.Tensor], pos_embeds: list[torch.Tensor]):
        shapes = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        mask = torch.cat([m.flatten(1) for m in masks], 1)
        pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1)
                         for i, p in enumerate(pos_embeds)], 1)
        ratios = torch.stack([valid_ratio(m) for m in masks], 1)
        return src, mask, pos, shapes, ratios

    def _select_proposals(self, memory: torch.Tensor, mask: torch.Tensor, shapes: list[tuple[int, int]]):
        proposals, invalid = encoder_proposals(mask, shapes)
        output_memory = self.enc_output_norm(self.enc_output(memory.masked_fill(invalid, 0.0)))
        last = self.decoder.num_layers
        enc_class = self.decoder.class_embed[last](output_memory)
        enc_coord_unact = self.decoder.bbox_embed[last](output_memory) + proposals
        if enc_class.shape[1] < self.two_stage_num_proposals:
            raise ValueError(f"the image gives {enc_class.shape[1]} encoder positions, fewer than the "
                             f"{self.two_stage_num_proposals} proposals needed; use a larger input")
        topk = torch.topk(enc_class[..., 0], self.two_stage_num_proposals, dim=1)[1]
        coords_unact = torch.gather(enc_coord_unact, 1, topk.unsqueeze(-1).repeat(1, 1, 4)).detach()
        return enc_class, enc_coord_unact, coords_unact

    def forward(self, srcs: list[torch.Tensor], masks: list[torch.Tensor],
                pos_embeds: list[torch.Tensor]) -> TransformerOutput:
        """srcs[l]: (N, C, H_l, W_l) projected features; masks[l]: (N, H_l, W_l) True on padding;
        pos_embeds[l]: (N, C, H_l, W_l). Proposals are ranked by the logit of class 0, as in the original."""
        src, mask, pos, shapes, ratios = self._flatten(srcs, masks, pos_embeds)
        memory = self.encoder(src, shapes, ratios, pos, mask)
        enc_class, enc_coord_unact, coords_unact = self._select_proposals(memory, mask, shapes)
        reference_points = coords_unact.sigmoid()
        pos_trans = self.pos_trans_norm(self.pos_trans(proposal_position_embedding(coords_unact)))
        query_pos, tgt = torch.split(pos_trans, self.d_model, dim=2)
        hs, inter_references = self.decoder(tgt, reference_points, memory, shapes, ratios, query_pos, mask)
        return TransformerOutput(hs=hs, init_reference=reference_points, inter_references=inter_references,
                                 enc_class=enc_class, enc_coord_unact=enc_coord_unact)
