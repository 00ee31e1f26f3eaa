"""Losses of src_training on tiny tensors with known answers."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from src_training import losses as L  # noqa: E402


def _t(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def test_dice_loss_perfect_and_empty_prediction():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    perfect = torch.where(target > 0, 50.0, -50.0)
    assert L.dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    nothing = torch.full_like(target, -50.0)
    # 1 - (0 + 1) / (0 + 9 + 1) = 0.9
    assert L.dice_loss(nothing, target).item() == pytest.approx(0.9, abs=1e-6)


def test_bce_known_value():
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.ones(1, 1, 2, 2)
    assert L.bce(logits, target).item() == pytest.approx(math.log(2.0), rel=1e-6)
    assert L.dice_bce(logits, target, 0.0, 2.0).item() == pytest.approx(2 * math.log(2.0), rel=1e-6)


def test_ignored_pixels_do_not_change_the_loss():
    """A host's own lesion (weight 0) counts neither as nodule nor as background: whatever the
    model says there, the ground-truth loss is the same, and equal to the loss of the rest alone."""
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:4, 2:4] = 1
    weight = torch.ones_like(target)
    weight[:, :, 5:, 5:] = 0  # the ignore region
    logits = _t(2, 1, 8, 8, seed=1)
    seg = L.SegmentationLoss(1.0, 1.0)
    base = seg(logits, target, weight)
    wild = logits.clone()
    wild[:, :, 5:, 5:] = 40.0  # "nodule!" on the ignored lesion
    assert seg(wild, target, weight).item() == pytest.approx(base.item(), abs=1e-6)
    assert seg(wild, target).item() > base.item() + 1.0  # without the weight it would count
    keep = weight > 0
    bce_rest = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], target[keep])
    assert L.bce(logits, target, weight=weight).item() == pytest.approx(bce_rest.item(), rel=1e-6)
    ones = torch.ones_like(target)
    assert seg(logits, target, ones).item() == pytest.approx(seg(logits, target).item(), rel=1e-6)


def test_response_kd_zero_when_equal_positive_otherwise_and_known_value():
    z = _t(2, 1, 4, 4)
    assert L.response_kd(z, z.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-7)
    assert L.response_kd(z + 1.0, z, 4.0).item() > 0
    # one pixel, T=1: teacher p=0.5 (logit 0), student logit log(3) -> p=0.75
    # KL = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25) = 0.5 ln(4/3)
    val = L.response_kd(torch.tensor([[[[math.log(3.0)]]]]), torch.zeros(1, 1, 1, 1), 1.0).item()
    assert val == pytest.approx(0.5 * math.log(4.0 / 3.0), rel=1e-5)
    # T^2 scaling: for small logit differences KL ~ quadratic in 1/T, so KL*T^2 stays of the same size
    a, b = _t(1, 1, 8, 8, seed=1) * 0.1, _t(1, 1, 8, 8, seed=2) * 0.1
    r1, r4 = L.response_kd(a, b, 1.0).item(), L.response_kd(a, b, 4.0).item()
    assert r4 == pytest.approx(r1, rel=0.05)


def test_attention_transfer_invariant_to_channel_count():
    f = _t(2, 8, 6, 6)
    wide = f.repeat(1, 4, 1, 1)  # 32 channels carrying the same spatial attention
    assert L.attention_transfer(f, wide).item() == pytest.approx(0.0, abs=1e-7)
    other = _t(2, 32, 6, 6, seed=3)
    assert L.attention_transfer(f, other).item() > 1e-3
    # different resolution: student upsampled to the teacher's grid
    assert L.attention_transfer(_t(2, 8, 3, 3), other).item() > 0
    # bounded: two unit vectors differ by at most 2 in squared norm (non-negative maps: <= 2)
    assert L.attention_transfer(f, other).item() <= 2.0


def test_region_affinity_zero_for_same_geometry_and_positive_otherwise():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    f = _t(2, 4, 8, 8).abs()
    # same features in a wider space (channels duplicated): cosine affinities equal -> 0
    assert L.region_affinity(f, f.repeat(1, 3, 1, 1), target).item() == pytest.approx(0.0, abs=1e-6)
    # teacher whose nodule region looks exactly like the background: affinity 1 vs student's < 1
    t = torch.ones(2, 16, 8, 8)
    s = torch.ones(2, 4, 8, 8)
    s[:, :2] = target.repeat(1, 2, 1, 1)  # nodule region differs in the student
    assert L.region_affinity(s, t, target).item() > 0.01
    # no nodule anywhere: nothing to distil
    assert L.region_affinity(s, t, torch.zeros_like(target)).item() == 0.0


def test_channel_wise_zero_when_equal_and_positive_otherwise():
    f = _t(2, 5, 4, 4)
    assert L.channel_wise(f, f.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert L.channel_wise(f, _t(2, 5, 4, 4, seed=9)).item() > 0


def test_distillation_module_terms_adapter_and_gradients():
    s_ch, t_ch = [1, 4, 4, 8], [1, 16, 16, 32]
    loss = L.DistillationLoss(
        s_ch,
        t_ch,
        stages=(2, 3),
        response=1.0,
        attention=1.0,
        region_affinity=1.0,
        channel_wise=1.0,
    )
    assert set(loss.adapters.keys()) == {"2", "3"}
    assert loss.adapters["3"].weight.shape == (32, 8, 1, 1)
    s_feats = [
        None,
        None,
        _t(2, 4, 8, 8, seed=1).requires_grad_(),
        _t(2, 8, 4, 4, seed=2).requires_grad_(),
    ]
    t_feats = [None, None, _t(2, 16, 8, 8, seed=3), _t(2, 32, 4, 4, seed=4)]
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:9, 4:9] = 1
    s_logits = _t(2, 1, 16, 16, seed=5).requires_grad_()
    terms = loss(s_logits, _t(2, 1, 16, 16, seed=6), s_feats, t_feats, target)
    assert set(terms) == {"response", "attention", "region_affinity", "channel_wise"}
    total = sum(terms.values())
    total.backward()
    assert s_logits.grad.abs().sum() > 0
    assert s_feats[3].grad.abs().sum() > 0
    assert loss.adapters["3"].weight.grad.abs().sum() > 0
    # weights 0 -> no term, no adapter
    none = L.DistillationLoss(s_ch, t_ch, stages=(3,), response=0.5)
    assert not none.needs_features and len(none.adapters) == 0
    assert set(none(s_logits, s_logits.detach())) == {"response"}


def test_encoder_features_hook_returns_smp_stages():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, in_channels=1, classes=1, encoder_depth=5)
    hook = L.EncoderFeatures(model.eval())
    with torch.no_grad():
        model(torch.zeros(1, 1, 64, 64))
    feats = hook.pop()
    assert [f.shape[1] for f in feats] == list(model.encoder.out_channels)
    assert feats[5].shape[-1] == 2 and hook.features is None
    hook.remove()
