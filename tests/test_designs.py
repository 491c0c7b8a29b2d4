"""Each design block: output shape, and FLOPs / MAC against hand-computed counts.

MAC (memory access cost) follows latbench/cost.py: every compute op reads its inputs (activations
and weights) and writes its outputs once; views are free. Counts below are in elements (x4 bytes
for float32), n = H*W pixels, batch 1; FLOPs are 2 per multiply-add.
"""

from __future__ import annotations

import pytest
import torch

from latbench.cost import build_network, count
from latbench.models import get_builder, list_builders

H = W = 4
N = H * W
F32 = 4

DESIGNS = ["conv", "shufflenet_v1_unit", "shufflenet_v2_unit", "mobilenet_v2_unit", "ghost_module", "g_ghost_stage"]


def conv_mac(n: int, c_in: int, c_out: int, k: int = 1, g: int = 1) -> int:
    """Elements a k x k conv reads (input, weight) and writes (output)."""
    return n * c_in + c_out * (c_in // g) * k * k + n * c_out


def conv_madds(n: int, c_in: int, c_out: int, k: int = 1, g: int = 1) -> int:
    return n * c_out * (c_in // g) * k * k


# (builder, params, multiply-adds, MAC elements) for one block at 4x4, batch 1
def _cases():
    out = []
    # dense 3x3 c=8 + ReLU
    out.append(("conv", {"c": 8, "kernel": 3}, conv_madds(N, 8, 8, 3), conv_mac(N, 8, 8, 3) + 2 * N * 8))
    # group 3x3 g=4, no ReLU
    out.append(("conv", {"c": 8, "kernel": 3, "groups": 4, "relu": False}, conv_madds(N, 8, 8, 3, 4),
                conv_mac(N, 8, 8, 3, 4)))
    # VarGNet: 2 channels per group (g = 4) + ReLU + pointwise + ReLU
    out.append(("conv", {"c": 8, "kernel": 3, "group_channels": 2, "pointwise": True},
                conv_madds(N, 8, 8, 3, 4) + conv_madds(N, 8, 8),
                conv_mac(N, 8, 8, 3, 4) + conv_mac(N, 8, 8) + 4 * N * 8))
    # MobileNet V1 unit: depthwise 3x3 + ReLU + 1x1 + ReLU
    out.append(("conv", {"c": 8, "group_channels": 1, "pointwise": True},
                N * 8 * 9 + N * 64, conv_mac(N, 8, 8, 3, 8) + conv_mac(N, 8, 8) + 4 * N * 8))
    # ShuffleNet V1: c=24, g=3, m=6: gconv, ReLU, shuffle copy, dw, gconv, add, ReLU
    c, g, m = 24, 3, 6
    out.append(("shufflenet_v1_unit", {"c": c, "groups": g},
                conv_madds(N, c, m, 1, g) + conv_madds(N, m, m, 3, m) + conv_madds(N, m, c, 1, g),
                conv_mac(N, c, m, 1, g) + 2 * N * m + 2 * N * m + conv_mac(N, m, m, 3, m)
                + conv_mac(N, m, c, 1, g) + 3 * N * c + 2 * N * c))
    # ShuffleNet V2: c=8, h=4: split (free), 1x1, ReLU, dw, 1x1, ReLU, concat, shuffle copy
    c, h = 8, 4
    out.append(("shufflenet_v2_unit", {"c": c},
                2 * conv_madds(N, h, h) + conv_madds(N, h, h, 3, h),
                2 * conv_mac(N, h, h) + conv_mac(N, h, h, 3, h) + 4 * N * h + 2 * N * c + 2 * N * c))
    # MobileNet V2 c=8, t=2 (T=16): 1x1, ReLU6, dw, ReLU6, 1x1, add
    c, t = 8, 16
    mb = conv_mac(N, c, t) + 2 * N * t + conv_mac(N, t, t, 3, t) + 2 * N * t + conv_mac(N, t, c) + 3 * N * c
    out.append(("mobilenet_v2_unit", {"c": c, "expansion": 2},
                conv_madds(N, c, t) + conv_madds(N, t, t, 3, t) + conv_madds(N, t, c), mb))
    # ... with SE r=4 (hidden 2): pool, 1x1, ReLU, 1x1, sigmoid on 1x1 maps; scale (mul)
    se = (N * c + c) + conv_mac(1, c, 2) + 2 * 2 + conv_mac(1, 2, c) + 2 * c + (N * c + c + N * c)
    out.append(("mobilenet_v2_unit", {"c": c, "expansion": 2, "se": True, "se_reduction": 4},
                conv_madds(N, c, t) + conv_madds(N, t, t, 3, t) + conv_madds(N, t, c) + 2 * c + 2 * c, mb + se))
    # Ghost module c=8, s=2 (m=4): 1x1 c->m, ReLU, dw 3x3 m->m, ReLU, concat
    c, m = 8, 4
    out.append(("ghost_module", {"c": c},
                conv_madds(N, c, m) + conv_madds(N, m, m, 3, m),
                conv_mac(N, c, m) + 2 * N * m + conv_mac(N, m, m, 3, m) + 2 * N * m + 2 * N * m + N * c))
    # plain stage: depth 3 x (3x3 conv + ReLU)
    out.append(("g_ghost_stage", {"c": 8, "depth": 3, "ghost": False}, 3 * conv_madds(N, 8, 8, 3),
                3 * (conv_mac(N, 8, 8, 3) + 2 * N * 8)))
    # G-Ghost c=8, depth 4, lambda 0.5 (raw 4, cheap 4), with mix
    c, r, q = 8, 4, 4
    blk = lambda ch: conv_mac(N, ch, ch, 3) + 2 * N * ch  # noqa: E731
    mix_in = c + 2 * r
    gg_mac = (blk(c) + 2 * blk(r) + conv_mac(N, q, q)
              + (N * c + 2 * N * r + N * mix_in)  # cat of x0 and both intermediates
              + (N * mix_in + mix_in) + conv_mac(1, mix_in, q) + 2 * q + conv_mac(1, q, q)  # pool, 1x1, ReLU, 1x1
              + (N * q + q + N * q) + 2 * N * q  # broadcast add, ReLU
              + (2 * N * r + N * c) + blk(c))  # concat, last block
    out.append(("g_ghost_stage", {"c": c, "depth": 4},
                2 * conv_madds(N, c, c, 3) + 2 * conv_madds(N, r, r, 3) + conv_madds(N, q, q) + mix_in * q + q * q,
                gg_mac))
    # ... without mix: no concat of features, no merge, no add
    out.append(("g_ghost_stage", {"c": c, "depth": 4, "mix": False},
                2 * conv_madds(N, c, c, 3) + 2 * conv_madds(N, r, r, 3) + conv_madds(N, q, q),
                blk(c) + 2 * blk(r) + conv_mac(N, q, q) + 2 * N * q + (2 * N * r + N * c) + blk(c)))
    return out


@pytest.mark.parametrize("builder,params,madds,mac", _cases(),
                         ids=[f"{b}-{i}" for i, (b, *_rest) in enumerate(_cases())])
def test_flops_and_mac_match_hand_counts(builder, params, madds, mac):
    cost = count(builder, params, 1, 1, H, W)
    assert cost.mult_adds == madds
    assert cost.flops == 2 * madds
    assert cost.mac_bytes == mac * F32


@pytest.mark.parametrize("builder,params,madds,mac", _cases()[:3])
def test_costs_scale_with_blocks_and_batch(builder, params, madds, mac):
    one = count(builder, params, 1, 1, H, W)
    assert count(builder, params, 3, 2, H, W).flops == 6 * one.flops


@pytest.mark.parametrize("builder,params,madds,mac", _cases(), ids=[f"{b}-{i}" for i, (b, *_r) in enumerate(_cases())])
def test_block_runs_on_cpu_and_keeps_its_shape(builder, params, madds, mac):
    model, x = build_network(builder, params, 2, 2, 6, 5, "cpu")
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_channel_shuffle_interleaves_groups():
    from latbench.models.designs import channel_shuffle

    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_every_design_is_registered_and_has_one_width():
    for name in DESIGNS:
        b = get_builder(name)
        assert b.width_names == ("c",)
    assert set(DESIGNS) <= set(list_builders())


@pytest.mark.parametrize("builder,params,msg", [
    ("conv", {"c": 10, "groups": 4}, "multiple of 4"),
    ("conv", {"c": 8, "groups": 2, "group_channels": 2}, "not both"),
    ("conv", {"c": 8, "kernel": 2}, "odd"),
    ("shufflenet_v1_unit", {"c": 20, "groups": 3}, "multiple of 12"),
    ("shufflenet_v2_unit", {"c": 7}, "multiple of 2"),
    ("ghost_module", {"c": 9}, "multiple of 2"),
    ("mobilenet_v2_unit", {"c": 8, "bogus": 1}, "Extra inputs"),
])
def test_invalid_params_say_what_to_use(builder, params, msg):
    with pytest.raises(ValueError, match=msg):
        get_builder(builder).params.model_validate(params)
