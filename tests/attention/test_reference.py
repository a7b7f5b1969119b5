"""Each module's forward equals its paper's formula, computed independently of the module code.

References are NumPy (SE, ECA, SimAM) or plain functional torch (CBAM, BAM, SK) using the weights
taken from the module; inputs and weights are seeded.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edge_se.attention import BAM, CBAM, ECA, SEModule, SelectiveKernel, SimAM

ATOL = 1e-5


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _bn(t: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(t, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def test_se_matches_gap_fc_relu_fc_sigmoid_scale(randomized, make_input):
    m = randomized(SEModule(64))
    x = make_input(2, 64, 9, 7)
    w1, b1 = _np(m.fc1.weight)[:, :, 0, 0], _np(m.fc1.bias)
    w2, b2 = _np(m.fc2.weight)[:, :, 0, 0], _np(m.fc2.bias)
    xn = _np(x)
    s = xn.mean(axis=(2, 3))  # (B, C)
    g = _sigmoid(np.maximum(s @ w1.T + b1, 0) @ w2.T + b2)
    ref = xn * g[:, :, None, None]
    assert w1.shape == (4, 64)
    np.testing.assert_allclose(_np(m(x)), ref, atol=ATOL)


def test_eca_matches_zero_padded_channel_conv_then_sigmoid_scale(randomized, make_input):
    m = randomized(ECA(256))
    x = make_input(2, 256, 5, 6)
    k = m.conv.weight.shape[-1]
    w = _np(m.conv.weight)[0, 0]
    xn = _np(x)
    s = xn.mean(axis=(2, 3))
    p = (k - 1) // 2
    sp = np.pad(s, ((0, 0), (p, p)))
    conv = np.stack([sp[:, c:c + k] @ w for c in range(s.shape[1])], axis=1)
    ref = xn * _sigmoid(conv)[:, :, None, None]
    assert k == 5
    np.testing.assert_allclose(_np(m(x)), ref, atol=ATOL)


def test_simam_matches_energy_formula(make_input):
    x = make_input(2, 8, 6, 5)
    xn = _np(x)
    lam = 1e-4
    n = 6 * 5 - 1
    mu = xn.mean(axis=(2, 3), keepdims=True)
    d = (xn - mu) ** 2
    v = d.sum(axis=(2, 3), keepdims=True) / n
    ref = xn * _sigmoid(d / (4 * (v + lam)) + 0.5)
    np.testing.assert_allclose(_np(SimAM()(x)), ref, atol=ATOL)


def test_simam_on_a_single_pixel_map_is_finite():
    y = SimAM()(torch.randn(2, 4, 1, 1))
    assert torch.isfinite(y).all()


def test_cbam_matches_shared_mlp_channel_gate_then_mean_max_spatial_gate(randomized, make_input):
    m = randomized(CBAM(32, rd_ratio=1 / 8))
    x = make_input(2, 32, 10, 9)
    cg, sg = m.channel_gate, m.spatial_gate

    def mlp(s):
        return F.conv2d(torch.relu(F.conv2d(s, cg.fc1.weight, cg.fc1.bias)), cg.fc2.weight, cg.fc2.bias)

    avg = x.mean(dim=(2, 3), keepdim=True)
    mx = x.flatten(2).max(dim=2).values[:, :, None, None]
    x1 = x * torch.sigmoid(mlp(avg) + mlp(mx))
    desc = torch.cat([x1.mean(dim=1, keepdim=True), x1.max(dim=1, keepdim=True).values], dim=1)
    ref = x1 * torch.sigmoid(F.conv2d(desc, sg.conv.weight, sg.conv.bias, padding=3))
    assert sg.conv.weight.shape == (1, 2, 7, 7)
    torch.testing.assert_close(m(x), ref, atol=ATOL, rtol=0)


def test_bam_matches_one_plus_sigmoid_of_channel_plus_spatial(randomized, make_input):
    m = randomized(BAM(64))
    x = make_input(2, 64, 12, 11)
    c, s = m.channel_att, m.spatial_att
    h = F.conv2d(x.mean(dim=(2, 3), keepdim=True), c[0].weight)
    mc = F.conv2d(torch.relu(_bn(h, c[1])), c[3].weight, c[3].bias)
    t = torch.relu(_bn(F.conv2d(x, s[0].weight), s[1]))
    t = torch.relu(_bn(F.conv2d(t, s[3].weight, padding=4, dilation=4), s[4]))
    t = torch.relu(_bn(F.conv2d(t, s[6].weight, padding=4, dilation=4), s[7]))
    ms = F.conv2d(t, s[9].weight, s[9].bias)
    ref = (1 + torch.sigmoid(mc + ms)) * x
    assert mc.shape == (2, 64, 1, 1) and ms.shape == (2, 1, 12, 11)
    torch.testing.assert_close(m(x), ref, atol=ATOL, rtol=0)


def test_bam_product_variant_multiplies_the_branches(randomized, make_input):
    m = randomized(BAM(32, combine="product"))
    x = make_input(1, 32, 8, 8)
    mc = m.channel_att(x.mean(dim=(2, 3), keepdim=True))
    ms = m.spatial_att(x)
    torch.testing.assert_close(m(x), (1 + torch.sigmoid(mc * ms)) * x, atol=ATOL, rtol=0)


def _sk_reference(m: SelectiveKernel, x: torch.Tensor, dilations, sizes, stride=1) -> torch.Tensor:
    feats = []
    for branch, k, dil in zip(m.branches, sizes, dilations):
        conv, bn = branch[0], branch[1]
        u = F.conv2d(x, conv.weight, stride=stride, padding=dil * (k - 1) // 2, dilation=dil, groups=conv.groups)
        feats.append(torch.relu(_bn(u, bn)))
    s = sum(feats).mean(dim=(2, 3), keepdim=True)
    z = torch.relu(_bn(F.conv2d(s, m.fuse[0].weight), m.fuse[1]))
    logits = torch.cat([F.conv2d(z, fc.weight) for fc in m.select], dim=2)  # (B, C, M, 1)
    a = torch.softmax(logits, dim=2)
    return sum(a[:, :, i:i + 1] * f for i, f in enumerate(feats))


def test_sk_matches_split_fuse_select_with_3x3_and_5x5(randomized, make_input):
    m = randomized(SelectiveKernel(32, 48, groups=4))
    x = make_input(2, 32, 9, 10)
    assert [b[0].kernel_size for b in m.branches] == [(3, 3), (5, 5)]
    torch.testing.assert_close(m(x), _sk_reference(m, x, (1, 1), (3, 5)), atol=ATOL, rtol=0)


def test_sk_dilated_matches_3x3_branches_with_dilation_1_and_2(randomized, make_input):
    m = randomized(SelectiveKernel(32, kernel_sizes=(3, 5), dilated=True, stride=2))
    x = make_input(2, 32, 10, 10)
    assert [b[0].kernel_size for b in m.branches] == [(3, 3), (3, 3)]
    ref = _sk_reference(m, x, (1, 2), (3, 3), stride=2)
    assert ref.shape == (2, 32, 5, 5)
    torch.testing.assert_close(m(x), ref, atol=ATOL, rtol=0)
