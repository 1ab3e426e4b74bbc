"""Vision Transformers (Dosovitskiy et al., ICLR 2021): ``vit-b-16``, ``vit-l-16``, ``vit-h-14``,
``vit-h-16``.

Contract: ``build_vit(name, batch=, image_size=, precision=)`` returns one inference pass as an
``OpGraph`` (registered as models of family ``transformer``, so an experiment writes
``workload: {model: vit-b-16, batch: 64}``). Sizes from the paper's Table 1 (layers, hidden,
MLP, heads) and the model name's patch size:

========== ====== ====== ===== ===== ====== =========================
model      layers hidden MLP   heads patch  tokens at 224 x 224
========== ====== ====== ===== ===== ====== =========================
vit-b-16   12     768    3072  12    16     197 (196 patches + class)
vit-l-16   24     1024   4096  16    16     197
vit-h-14   32     1280   5120  16    14     257
vit-h-16   32     1280   5120  16    16     197
========== ====== ====== ===== ===== ====== =========================

``vit-h-16`` is ViT-Huge with 16 x 16 patches, as MixPE's artifact runs it
(yuzhang712/mixpe_simulator@7e0d42c bitfusion/src/benchmarks/*_bench.py, ``vit_huge``: patch
embedding 1280 x 3 x 16 x 16); its patch embedding's K = 768 is a multiple of the usual
quantization group of 128, which ViT-H/14's 588 is not.

The pass: ``patch_embed`` (a Conv2D with kernel = stride = patch, bias), ``tokens`` (a view to
(batch, tokens, hidden) with the class token prepended), ``pos_embed`` (the learned position
table read as a gather; the class token's parameters are stored as one more row of it) and
``embed_add``; per layer (pre-norm, ``block =
"layers.{i}"``): ``norm1``, ``attn.q/k/v`` (Linear; K and V have role ``kv_cache``, so
``precision.kv_cache`` sets the format attention reads them in, as for LLMs), ``attn.qk``
(MatMul, batch x heads GEMMs of tokens x head_dim x tokens), ``attn.softmax``, ``attn.av``,
``attn.o``, ``add1``, ``norm2``, ``mlp.up``, ``mlp.act`` (GELU), ``mlp.down``, ``add2``; then the
final ``norm``, ``cls_token`` (a view of the class token) and the classifier ``head`` (1000
classes). Parameters: ViT-B/16 86.57 M, ViT-L/16 304.33 M, ViT-H/14 632.05 M (timm's counts);
ViT-H/16 632.20 M.
"""

from __future__ import annotations

from workloads.graph import OpGraph, PrecisionPolicy
from workloads.ops import Linear, MatMul, Reshape, TensorSpec
from workloads.registry import register_model

__all__ = ["VIT_CONFIGS", "build_vit"]

# name -> (layers, hidden, mlp, heads, patch); Dosovitskiy et al. 2021, Table 1
VIT_CONFIGS: dict[str, tuple[int, int, int, int, int]] = {
    "vit-b-16": (12, 768, 3072, 12, 16),
    "vit-l-16": (24, 1024, 4096, 16, 16),
    "vit-h-14": (32, 1280, 5120, 16, 14),
    "vit-h-16": (32, 1280, 5120, 16, 16),  # MixPE's artifact's ViT-Huge (see the docstring)
}
CLASSES = 1000
DEFAULT_PRECISION = PrecisionPolicy(weights="fp16", activations="fp16")


def build_vit(name: str, *, batch: int = 1, image_size: int = 224,
              precision: PrecisionPolicy | None = None) -> OpGraph:
    """One inference pass of the named ViT (see the module docstring)."""
    layers, h, mlp, heads, patch = VIT_CONFIGS[name]
    if image_size % patch:
        raise ValueError(f"image_size {image_size} is not a multiple of {name}'s patch size {patch}")
    p = precision or DEFAULT_PRECISION
    side = image_size // patch
    T = side * side + 1
    hd = h // heads
    g = OpGraph(name, p, meta={"model": name, "batch": batch, "image_size": image_size, "tokens": T})

    def weight(n: str, shape: tuple[int, ...]) -> TensorSpec:
        return p.weight(n, shape)

    def act(n: str, shape: tuple[int, ...], role: str = "activation") -> TensorSpec:
        return TensorSpec(n, shape, p.kv if role == "kv_cache" else p.activations, role)

    def linear(n: str, x: TensorSpec, out: int, blk: str, role: str = "activation") -> TensorSpec:
        k = x.shape[-1]
        tokens = x.numel // k
        return g.add(Linear(name=n, inputs=(x,), weights=(weight(f"{n}.weight", (k, out)), weight(f"{n}.bias", (out,))),
                            output=act(f"{n}.out", (*x.shape[:-1], out), role), tokens=tokens,
                            in_features=k, out_features=out, block=blk))

    def matmul(n: str, a: TensorSpec, b: TensorSpec, M: int, K: int, N: int, out_shape, blk: str) -> TensorSpec:
        return g.add(MatMul(name=n, inputs=(a, b), output=act(f"{n}.out", out_shape), batch=batch * heads,
                            M=M, K=K, N=N, block=blk))

    img = g.input("image", (batch, 3, image_size, image_size))
    x = g.conv2d("patch_embed", img, h, kernel=patch, stride=patch, bias=True, block="embed")
    x = g.add(Reshape(name="tokens", inputs=(x,), output=act("tokens.out", (batch, T, h)), block="embed"))
    ids = g.input("position_ids", (batch, T), "int32")
    pos = g.embedding("pos_embed", ids, T + 1, h, block="embed")  # + 1 row: the class token
    x = g.elementwise("embed_add", "add", x, pos, block="embed")
    for i in range(layers):
        blk = f"layers.{i}"
        y = g.norm(f"{blk}.norm1", x, "layernorm", block=blk)
        q = linear(f"{blk}.attn.q", y, h, blk)
        k = linear(f"{blk}.attn.k", y, h, blk, role="kv_cache")
        v = linear(f"{blk}.attn.v", y, h, blk, role="kv_cache")
        s = matmul(f"{blk}.attn.qk", q, k, T, hd, T, (batch * heads, T, T), blk)
        s = g.softmax(f"{blk}.attn.softmax", s, block=blk)
        o = matmul(f"{blk}.attn.av", s, v, T, T, hd, (batch, T, h), blk)
        o = linear(f"{blk}.attn.o", o, h, blk)
        x = g.elementwise(f"{blk}.add1", "add", x, o, block=blk)
        y = g.norm(f"{blk}.norm2", x, "layernorm", block=blk)
        y = g.elementwise(f"{blk}.mlp.act", "gelu", linear(f"{blk}.mlp.up", y, mlp, blk), block=blk)
        y = linear(f"{blk}.mlp.down", y, h, blk)
        x = g.elementwise(f"{blk}.add2", "add", x, y, block=blk)
    x = g.norm("norm", x, "layernorm", block="head")
    x = g.add(Reshape(name="cls_token", inputs=(x,), output=act("cls_token.out", (batch, h)), block="head"))
    linear("head", x, CLASSES, "head")
    return g


def _register(name: str) -> None:
    layers, h, mlp, heads, patch = VIT_CONFIGS[name]

    def builder(*, batch: int = 1, image_size: int = 224, precision: PrecisionPolicy | None = None) -> OpGraph:
        return build_vit(name, batch=batch, image_size=image_size, precision=precision)

    register_model(name, family="transformer",
                   description=f"ViT {name[4:].upper()} ({layers} layers, hidden {h}, MLP {mlp}, {heads} heads, "
                               f"{patch}x{patch} patches; {(224 // patch) ** 2 + 1} tokens at 224x224)",
                   source="Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021, Table 1"
                   + ("; 16x16 patches as in MixPE's artifact (yuzhang712/mixpe_simulator@7e0d42c)"
                      if name == "vit-h-16" else ""))(builder)


for _name in VIT_CONFIGS:
    _register(_name)
