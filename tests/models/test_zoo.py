"""Every zoo model builds and runs; attention sits where its paper puts it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edge_se.attention import BAM, CBAM, ECA, SEModule, SelectiveKernel, SimAM
from edge_se.models import count_params, create_model, list_models, model_info
from edge_se.models.resnet import BasicBlock, Bottleneck

from zoo_helpers import HEAVY

ATTN_CLASS = {"se": SEModule, "cbam": CBAM, "bam": BAM, "sk": SelectiveKernel, "simam": SimAM, "eca": ECA}


def _small_shape(name: str) -> tuple[int, ...]:
    shape = model_info(name).default_input_shape
    return shape if shape[-1] <= 32 else (*shape[:2], 64, 64)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]
)
def test_every_zoo_model_runs_forward_at_a_small_input(name):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(_small_shape(name)))
    assert out.shape == (1, model_info(name).num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_every_zoo_model_contains_its_attention_type(name):
    model = create_model(name)
    wanted = ATTN_CLASS[model_info(name).attention_type]
    assert any(isinstance(m, wanted) for m in model.modules())


def test_resnets_pool_globally_so_any_input_size_works():
    model = create_model("se_resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 80)).shape == (2, 1000)


def test_se_gates_the_residual_branch_before_the_add():
    block = create_model("se_resnet18").eval().layer1[0]
    assert isinstance(block, BasicBlock) and isinstance(block.attn, SEModule)
    nn.init.zeros_(block.attn.fc2.weight)
    nn.init.constant_(block.attn.fc2.bias, -100.0)  # gate ~ 0: the branch is switched off
    x = torch.randn(1, 64, 16, 16)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x), atol=1e-6)


def test_one_se_module_per_block():
    model = create_model("se_resnet50")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    assert all(isinstance(b.attn, SEModule) for b in blocks)


def test_bam_sits_only_at_the_three_stage_boundaries():
    model = create_model("bam_resnet50")
    bams = [name for name, m in model.named_modules() if isinstance(m, BAM)]
    assert bams == ["stage_attn.0", "stage_attn.1", "stage_attn.2"]


def test_sk_replaces_the_3x3_conv_of_every_bottleneck():
    model = create_model("sk_resnet50")
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert all(isinstance(b.conv2, SelectiveKernel) for b in blocks)
    assert not any(isinstance(b.attn, SelectiveKernel) for b in blocks)


def test_se_resnext_uses_32_groups_of_width_4():
    conv = create_model("se_resnext50_32x4d").layer1[0].conv2
    assert (conv.groups, conv.in_channels) == (32, 128)


def test_se_digits_is_an_mbconv_net_with_depthwise_conv_se_and_silu():
    model = create_model("se_digits")
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    assert depthwise
    assert any(isinstance(m, SEModule) for m in model.modules())
    assert any(isinstance(m, nn.SiLU) for m in model.modules())


@pytest.mark.parametrize("name", list_models("*_digits"))
def test_digits_models_are_small(name):
    assert 50_000 <= count_params(name) <= 210_000


@pytest.mark.parametrize("name", list_models("*_digits"))
def test_digits_models_train_one_step_on_a_batch(name):
    model = create_model(name).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["se_resnet152", "bam_resnet50"])
def test_random_init_models_agree_in_float32_and_float64(name):
    # Exported random-init models are compared numerically downstream: they must not be chaotic.
    model = create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.double()(x.double())
        got = model.float()(x)
    assert (got.double() - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_random_init_se_gates_are_not_saturated():
    model = create_model("se_resnet50").eval()
    gates = []
    for m in model.modules():
        if isinstance(m, SEModule):
            m.gate.register_forward_hook(lambda mod, inp, out: gates.append(out.flatten()))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    g = torch.cat(gates)
    assert ((g > 0.01) & (g < 0.99)).float().mean() > 0.9


@pytest.mark.parametrize("name", list_models("*_digits"))
def test_random_init_digits_outputs_depend_on_the_input(name):
    # A random-init model whose logits ignore the input would make every export check vacuous.
    from edge_se.models import resolve_model

    model = resolve_model(name, seed=0).module
    x = torch.randn((4, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert model(x).std(0).mean() > 1e-3
