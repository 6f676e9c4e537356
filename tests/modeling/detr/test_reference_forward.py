"""Deformable DETR end to end against a functional transcription of the original forward pass
(Joiner + input projections, flattening with level embeddings, encoder, two-stage proposals ranked
by class 0, decoder with box refinement, last-layer heads) on a padded two-image batch with
parity weights. The bilinear sampling kernel is shared (it has its own loop reference)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from detic_cli.checkpoint.load import load_checkpoint
from detic_cli.config import load_config
from detic_cli.modeling.builders import build_model
from detic_cli.modeling.detr.meta_arch import pad_with_mask
from detic_cli.modeling.detr.ms_deform_attn import ms_deform_attn_sample

CONFIG = "Detic_DeformDETR_LI_R50_4x_ft4x.yaml"


def _lin(x, m):
    return F.linear(x, m.weight, m.bias)


def _ln(x, m):
    return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


def _inv_sig(x, eps=1e-5):
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _sine(mask, feats=128):
    not_mask = ~mask
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    y = (y - 0.5) / (y[:, -1:, :] + 1e-6) * 2 * math.pi
    x = (x - 0.5) / (x[:, :, -1:] + 1e-6) * 2 * math.pi
    dim_t = 10000 ** (2 * (torch.arange(feats, dtype=torch.float32) // 2) / feats)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).permute(0, 3, 1, 2)


def _msda(m, query, ref, src, shapes, pad):
    n, q, _ = query.shape
    value = _lin(src, m.value_proj).masked_fill(pad[..., None], 0.0).view(n, src.shape[1], m.n_heads, -1)
    off = _lin(query, m.sampling_offsets).view(n, q, m.n_heads, m.n_levels, m.n_points, 2)
    w = F.softmax(_lin(query, m.attention_weights).view(n, q, m.n_heads, -1), -1)
    w = w.view(n, q, m.n_heads, m.n_levels, m.n_points)
    if ref.shape[-1] == 2:
        norm = torch.tensor([[sw, sh] for sh, sw in shapes], dtype=torch.float32)
        loc = ref[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    else:
        loc = ref[:, :, None, :, None, :2] + off / m.n_points * ref[:, :, None, :, None, 2:] * 0.5
    return _lin(ms_deform_attn_sample(value, shapes, loc, w), m.output_proj)


def _valid_ratio(mask):
    _, h, w = mask.shape
    return torch.stack([(~mask[:, 0, :]).sum(1).float() / w, (~mask[:, :, 0]).sum(1).float() / h], -1)


def _levels(detr, images, mask):
    feats = detr.backbone[0].backbone(images)
    srcs, masks = [], []
    for i, name in enumerate(sorted(feats)):
        srcs.append(detr.input_proj[i](feats[name]))
        masks.append(F.interpolate(mask[None].float(), size=feats[name].shape[-2:]).bool()[0])
    last = feats[sorted(feats)[-1]]
    for lvl in range(len(srcs), len(detr.input_proj)):
        srcs.append(detr.input_proj[lvl](last if lvl == len(feats) else srcs[-1]))
        masks.append(F.interpolate(mask[None].float(), size=srcs[-1].shape[-2:]).bool()[0])
    return srcs, masks, [_sine(m) for m in masks]


def _encode(tr, srcs, masks, pos):
    shapes = [tuple(s.shape[-2:]) for s in srcs]
    src = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
    pad = torch.cat([m.flatten(1) for m in masks], 1)
    lvl_pos = torch.cat([p.flatten(2).transpose(1, 2) + tr.level_embed[i].view(1, 1, -1) for i, p in enumerate(pos)], 1)
    ratios = torch.stack([_valid_ratio(m) for m in masks], 1)
    refs = []
    for lvl, (h, w) in enumerate(shapes):
        ry, rx = torch.meshgrid(torch.linspace(0.5, h - 0.5, h), torch.linspace(0.5, w - 0.5, w), indexing="ij")
        refs.append(torch.stack((rx.reshape(-1)[None] / (ratios[:, None, lvl, 0] * w),
                                 ry.reshape(-1)[None] / (ratios[:, None, lvl, 1] * h)), -1))
    ref = torch.cat(refs, 1)[:, :, None] * ratios[:, None]
    out = src
    for layer in tr.encoder.layers:
        out = _ln(out + _msda(layer.self_attn, out + lvl_pos, ref, out, shapes, pad), layer.norm1)
        out = _ln(out + _lin(F.relu(_lin(out, layer.linear1)), layer.linear2), layer.norm2)
    return out, pad, shapes, ratios


def _proposals(tr, memory, pad, shapes, heads):
    n = memory.shape[0]
    props, start = [], 0
    for lvl, (h, w) in enumerate(shapes):
        m = pad[:, start:start + h * w].view(n, h, w)
        gy, gx = torch.meshgrid(torch.linspace(0, h - 1, h), torch.linspace(0, w - 1, w), indexing="ij")
        scale = torch.stack([(~m[:, 0, :]).sum(1), (~m[:, :, 0]).sum(1)], 1).view(n, 1, 1, 2)
        grid = (torch.stack([gx, gy], -1)[None].expand(n, -1, -1, -1) + 0.5) / scale
        props.append(torch.cat((grid, torch.full_like(grid, 0.05 * 2.0 ** lvl)), -1).view(n, -1, 4))
        start += h * w
    props = torch.cat(props, 1)
    ok = ((props > 0.01) & (props < 0.99)).all(-1, keepdim=True)
    props = torch.log(props / (1 - props)).masked_fill(pad[..., None], float("inf")).masked_fill(~ok, float("inf"))
    mem = memory.masked_fill(pad[..., None], 0.0).masked_fill(~ok, 0.0)
    mem = _ln(_lin(mem, tr.enc_output), tr.enc_output_norm)
    cls_head, box_head = heads
    logits = cls_head(mem)
    coords = box_head(mem) + props
    top = torch.topk(logits[..., 0], tr.two_stage_num_proposals, dim=1)[1]
    return torch.gather(coords, 1, top[..., None].repeat(1, 1, 4))


def _embed_proposals(unact, feats=128):
    dim_t = 10000 ** (2 * (torch.arange(feats, dtype=torch.float32) // 2) / feats)
    pos = (unact.sigmoid() * 2 * math.pi)[..., None] / dim_t
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(2)


def reference_detr(detr, images, mask):
    tr = detr.transformer
    memory, pad, shapes, ratios = _encode(tr, *_levels(detr, images, mask))
    last = len(tr.decoder.layers)
    unact = _proposals(tr, memory, pad, shapes, (detr.class_embed[last], detr.bbox_embed[last]))
    ref = unact.sigmoid()
    query_pos, tgt = torch.split(_ln(_lin(_embed_proposals(unact), tr.pos_trans), tr.pos_trans_norm), 256, dim=2)
    out = tgt
    for lid, layer in enumerate(tr.decoder.layers):
        ref_in = ref[:, :, None] * torch.cat([ratios, ratios], -1)[:, None]
        q = (out + query_pos).transpose(0, 1)
        out = _ln(out + layer.self_attn(q, q, out.transpose(0, 1))[0].transpose(0, 1), layer.norm2)
        out = _ln(out + _msda(layer.cross_attn, out + query_pos, ref_in, memory, shapes, pad), layer.norm1)
        out = _ln(out + _lin(F.relu(_lin(out, layer.linear1)), layer.linear2), layer.norm3)
        prev, ref = ref, (detr.bbox_embed[lid](out) + _inv_sig(ref)).sigmoid()
    return {"pred_logits": detr.class_embed[last - 1](out),
            "pred_boxes": (detr.bbox_embed[last - 1](out) + _inv_sig(prev)).sigmoid()}


@pytest.fixture(scope="module")
def model(shared_dir, parity_checkpoint):
    m = build_model(load_config(shared_dir / "detic-reference/configs" / CONFIG))
    load_checkpoint(m, parity_checkpoint(CONFIG, 0))
    return m.eval()


def test_forward_matches_the_original_on_a_padded_batch(model):
    g = torch.Generator().manual_seed(3)
    images = [torch.randn(3, 128, 160, generator=g), torch.randn(3, 96, 120, generator=g)]
    batch, mask = pad_with_mask(images)
    with torch.no_grad():
        got = model.detr(batch, mask)
        want = reference_detr(model.detr, batch, mask)
    for key in ("pred_logits", "pred_boxes"):
        assert got[key].shape == want[key].shape
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)
