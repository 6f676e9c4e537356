"""The CLIP text tower (OpenAI layout).

One implementation serves both Detic's caption models (checkpoint keys `text_encoder.*`) and
`detic build-vocab` / `detect --vocab`. State-dict keys equal those of OpenAI's CLIP text part:
`token_embedding.weight`, `positional_embedding`, `transformer.resblocks.N.{attn,ln_1,mlp,ln_2}.*`,
`ln_final.*`, `text_projection`. Features are the projected end-of-text token, not normalised.
Text input goes through the `ClipTokenizer` the tower is given (`detic_cli.clip.bpe` builds CLIP's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from detic_cli.errors import DeticError
from detic_cli.modeling.text.tokenizer import ClipTokenizer, Tokens, tokenize


class _LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP does for fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight.float(), self.bias.float()
        return nn.functional.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    """Pre-norm residual block: causal self-attention then a 4x MLP. Input (N, L, width)."""

    def __init__(self, width: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = _LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", _QuickGELU() if quick_gelu else nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = _LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_Block(width, heads, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class TextEncoder(nn.Module):
    """CLIP text tower. forward(list of N strings, or (N, L) token ids) -> (N, embed_dim) features.

    Defaults are ViT-B/32's: 77 tokens, 49408 BPE ids, width 512, 8 heads, 12 layers, 512 out.
    `tokenizer` turns strings into ids (`tokenize`, string input); token-id input needs none.
    """

    def __init__(
        self,
        embed_dim: int = 512,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 512,
        heads: int = 8,
        layers: int = 12,
        quick_gelu: bool = True,
        tokenizer: ClipTokenizer | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.random_crop = False  # True: over-long captions get a random window, as Detic's training
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = _Transformer(width, layers, heads, quick_gelu)
        self.ln_final = _LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """CLIP's initialisation (normal, std scaled by width and depth), for training from scratch."""
        width, depth = self.ln_final.normalized_shape[0], len(self.transformer.resblocks)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width**-0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width**-0.5 * (2 * depth) ** -0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width**-0.5 * (2 * depth) ** -0.5)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def tokenize(self, texts: Sequence[str], random_crop: bool | None = None) -> Tokens:
        """Texts -> (N, context_length) ids; see `tokenize` (`random_crop` defaults to the attribute)."""
        if self.tokenizer is None:
            raise DeticError("this CLIP text tower has no tokenizer: build it with tokenizer= "
                             "(detic_cli.clip.bpe.clip_tokenizer() reads CLIP's BPE merges)")
        crop = self.random_crop if random_crop is None else random_crop
        return tokenize(self.tokenizer, texts, self.context_length, crop)

    def encode_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, L <= context_length) ids, eot = highest id per row -> (N, embed_dim) features.

        Attention is causal, so columns after the last eot cannot change the result and are dropped.
        """
        dtype = self.text_projection.dtype
        ids = ids.to(self.text_projection.device)
        eot = ids.argmax(dim=-1)
        length = int(eot.max()) + 1 if ids.numel() else 1
        ids = ids[:, :length]
        x = self.token_embedding(ids).to(dtype) + self.positional_embedding[:length].to(dtype)
        mask = torch.full((length, length), float("-inf"), device=ids.device, dtype=dtype).triu_(1)
        x = self.ln_final(self.transformer(x, mask))
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
        ids = texts if isinstance(texts, torch.Tensor) else self.tokenize(list(texts)).ids
        return self.encode_tokens(ids)


def text_encoder_from_state_dict(state: dict[str, torch.Tensor], quick_gelu: bool = True,
                                 tokenizer: ClipTokenizer | None = None) -> TextEncoder:
    """A TextEncoder (eval mode) sized from an OpenAI-layout text state dict (heads = width / 64);
    its parameters are the given tensors (same dtype and device, no copy); `tokenizer` as TextEncoder's.

    Raises KeyError/RuntimeError when the keys do not form a CLIP text tower.
    """
    width = state["ln_final.weight"].shape[0]
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    with torch.device("meta"):  # no wasted random init: the tensors come from `state`
        model = TextEncoder(
            embed_dim=state["text_projection"].shape[1],
            context_length=state["positional_embedding"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            width=width,
            heads=max(1, width // 64),
            layers=layers,
            quick_gelu=quick_gelu,
            tokenizer=tokenizer,
        )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
