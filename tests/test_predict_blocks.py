"""latbench.predict.blocks: networks cut into blocks that cover them exactly and replay on their own."""

from __future__ import annotations

import pytest
import torch

from latbench.cost import build_network, count, count_call
from latbench.models.networks import NETWORKS
from latbench.predict.blocks import BlockModule, cut, network_blocks, op_base, trace
from predict_factory import residual

CTX = {"device": "cpu", "threads": 1, "mode": "eager", "latency_semantics": "throughput"}


def _block_costs(blocks):
    total = [0, 0, 0]
    for b in blocks:
        with torch.device("meta"):
            m = BlockModule(b.desc)
        c = count_call(m, torch.empty(1, device="meta"))
        total = [total[0] + c.flops, total[1] + c.mac_bytes, total[2] + c.activations]
    return total


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_blocks_of_every_built_in_network_add_up_to_its_flops_mac_and_activations(name):
    model, x = build_network(name, {}, 1, 1, 224, 224, "meta")
    blocks = network_blocks(model, x)
    net = count(name, {}, 1, 1, 224, 224)
    assert _block_costs(blocks) == [net.flops, net.mac_bytes, net.activations]


def test_every_op_is_in_exactly_one_block_fused_or_not():
    model, x = build_network("shufflenet_v2", {"width": 0.5}, 1, 1, 224, 224, "meta")
    tr = trace(model, x)
    for fuse in (True, False):
        ops = sorted(i for b in cut(tr, fuse) for i in b.ops)
        assert ops == list(range(len(tr.ops)))


def test_conv_and_its_activation_are_one_block_and_apart_without_fusion():
    model, x = build_network("mobilenet_v1", {}, 1, 1, 224, 224, "meta")
    fused, unfused = network_blocks(model, x), network_blocks(model, x, fuse=False)
    convs = [b for b in fused if b.kind.startswith("conv")]
    assert convs and all(b.label.endswith("+relu") for b in convs)  # every MobileNet V1 conv is conv+relu
    names = [[op_base(o[0]) for o in b.desc["ops"]] for b in fused if b.kind.startswith("conv")]
    assert all(n[-1] == "relu_" and n[0] == "conv2d" for n in names)
    assert len(unfused) == len(fused) + len(convs)  # the activations stand alone
    assert _block_costs(fused) == _block_costs(unfused)


def test_channel_shuffle_is_a_copy_block_and_views_are_no_block():
    model, x = build_network("shufflenet_v2", {"width": 0.5}, 1, 1, 224, 224, "meta")
    blocks = network_blocks(model, x)
    copies = [b for b in blocks if b.kind == "copy"]
    assert len(copies) == 16  # one channel shuffle per unit (4 + 8 + 4 units)
    # the shuffle's views travel with the copy that uses them: view, transpose, contiguous (the kernel)
    assert all([op_base(o[0]) for o in b.desc["ops"]] == ["view", "transpose", "contiguous"] for b in copies)
    assert all(b.label.startswith("contiguous @") for b in copies)


def test_keys_are_stable_shared_by_equal_blocks_and_depend_on_the_context():
    model, x = residual(), torch.randn(1, 3, 16, 16)
    a, b = network_blocks(model, x), network_blocks(residual(), x)
    assert [k.key(CTX) for k in a] == [k.key(CTX) for k in b]
    keys = [k.key(CTX) for k in a]
    assert len(keys) - len(set(keys)) == 1  # the two equal 1x1 convs share one measurement
    assert a[0].key(CTX) != a[0].key({**CTX, "threads": 2})


def test_a_block_replays_on_the_cpu_with_the_shapes_of_the_network():
    model, x = residual(), torch.randn(1, 3, 16, 16)
    blocks = network_blocks(model, x)
    with torch.inference_mode():
        outs = [BlockModule(b.desc)(torch.zeros(1)) for b in blocks]
    assert tuple(outs[-1].shape) == (1, 10)  # the classifier's output
    assert tuple(outs[0].shape) == (1, 8, 16, 16)  # the stem
    assert [b.kind for b in blocks] == ["conv", "conv_dw", "conv", "conv", "elementwise", "pool", "linear"]
    assert blocks[4].label.endswith("+relu")  # relu(x + y): the add with its activation


def test_a_replayed_block_reads_inputs_with_the_recorded_strides():
    """ShuffleNet V2's chunk hands the next block a channel slice: the replay keeps its strides."""
    model, x = build_network("shufflenet_v2", {"width": 0.5}, 1, 1, 64, 64, "meta")
    strided = 0
    for b in network_blocks(model, x):
        with torch.device("meta"):
            m = BlockModule(b.desc)
        for i, info in enumerate(b.desc["inputs"]):
            t = getattr(m, f"in{i}")
            assert list(t.stride()) == info["stride"] and list(t.shape) == info["shape"]
            strided += list(t.stride()) != list(torch.empty(info["shape"], device="meta").stride())
    assert strided > 0
