"""Losses: ground truth (Dice, BCE) and knowledge distillation (response, attention, region, channel).

Pure tensor functions first (tested on tiny tensors with known answers), then the thin
``nn.Module`` that a training step calls. Conventions: ``logits`` and ``target`` are ``(N, 1, H, W)``;
features are ``(N, C, h, w)`` from the smp encoder stages. The student (ResNet-18: 64..512 channels)
and the teacher (ResNet-152: 256..2048 channels) differ in width, so every feature-level loss here
either compares channel-free maps (attention transfer, region affinity) or learns a 1x1 adapter
(channel-wise distillation).

References
- Hinton et al. 2015, "Distilling the knowledge in a neural network" (response KD, T^2 scaling).
- Zagoruyko & Komodakis, ICLR 2017, "Paying more attention to attention" (attention transfer).
- Qin et al., IEEE TMI 2021, "Efficient medical image segmentation based on knowledge distillation"
  (EMKD: region affinity distillation between class-region centres).
- Shu et al., ICCV 2021, "Channel-wise knowledge distillation for dense prediction".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------ ground truth ---------


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, weight=None
) -> torch.Tensor:
    """Soft Dice loss ``1 - (2|P∩G| + s) / (|P| + |G| + s)`` pooled over the whole batch;
    ``weight`` (0/1, the target's shape) leaves pixels out (an ignore region)."""
    prob = torch.sigmoid(logits.float())
    target = target.float()
    if weight is not None:
        prob, target = prob * weight, target * weight
    inter = (prob * target).sum()
    return 1.0 - (2.0 * inter + smooth) / (prob.sum() + target.sum() + smooth)


def bce(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None, weight=None
) -> torch.Tensor:
    """Binary cross-entropy on logits, mean over pixels (over the pixels of weight 1 when a
    0/1 ``weight`` is given; an all-zero weight gives 0)."""
    pw = None if pos_weight is None else torch.tensor(pos_weight, device=logits.device)
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pw)
    per_pixel = F.binary_cross_entropy_with_logits(
        logits.float(), target.float(), pos_weight=pw, reduction="none"
    )
    weight = weight.float()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


def dice_bce(logits, target, w_dice: float = 1.0, w_bce: float = 1.0, weight=None) -> torch.Tensor:
    """The thesis's ground-truth loss: weighted Dice + BCE (``weight``: 0 where to ignore)."""
    return w_dice * dice_loss(logits, target, weight=weight) + w_bce * bce(
        logits, target, weight=weight
    )


# ------------------------------------------------------------------ response KD ----------


def response_kd(student_logits, teacher_logits, temperature: float = 4.0) -> torch.Tensor:
    """Bernoulli KL(teacher || student) per pixel at temperature T, mean over pixels, times T².

    For a one-logit output the "softmax at T" of Hinton et al. is ``sigmoid(z / T)`` over the two
    outcomes {nodule, background}; the T² factor keeps gradient size independent of T.
    """
    t = float(temperature)
    zs = student_logits.float() / t
    zt = teacher_logits.float() / t
    pt = torch.sigmoid(zt)
    # KL = pt (log pt - log ps) + (1-pt) (log(1-pt) - log(1-ps)), in stable log-sigmoid form
    kl = pt * (F.logsigmoid(zt) - F.logsigmoid(zs)) + (1 - pt) * (
        F.logsigmoid(-zt) - F.logsigmoid(-zs)
    )
    return kl.mean() * t * t


# ------------------------------------------------------------------ feature KD -----------


def attention_map(features: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Spatial attention ``mean_c |f_c|^p``, flattened and L2-normalised: ``(N, h*w)``.

    The mean over channels makes it independent of the channel count (AT compares networks of
    different width).
    """
    am = features.float().abs().pow(p).mean(dim=1)
    return F.normalize(am.flatten(1), dim=1)


def attention_transfer(student_feat, teacher_feat, p: float = 2.0) -> torch.Tensor:
    """AT loss: squared L2 distance of normalised attention maps, mean over the batch.

    Maps of different resolution are matched by bilinear resizing of the student's features.
    """
    if student_feat.shape[-2:] != teacher_feat.shape[-2:]:
        student_feat = F.interpolate(
            student_feat, teacher_feat.shape[-2:], mode="bilinear", align_corners=False
        )
    diff = attention_map(student_feat, p) - attention_map(teacher_feat, p)
    return diff.pow(2).sum(dim=1).mean()


def region_centres(features: torch.Tensor, target: torch.Tensor, eps: float = 1e-6):
    """Mean feature over background and nodule regions (masked average pooling): 2 x ``(N, C)``."""
    fg = F.interpolate(
        target.float(), features.shape[-2:], mode="bilinear", align_corners=False
    ).clamp(0, 1)
    bg = 1.0 - fg
    f = features.float()
    c_fg = (f * fg).sum(dim=(2, 3)) / (fg.sum(dim=(2, 3)) + eps)
    c_bg = (f * bg).sum(dim=(2, 3)) / (bg.sum(dim=(2, 3)) + eps)
    return c_bg, c_fg


def region_affinity(student_feat, teacher_feat, target) -> torch.Tensor:
    """EMKD region affinity distillation (Qin et al. 2021).

    Each network's affinity is the cosine similarity between its background and nodule region
    centres (computed in its own feature space, so the channel gap does not matter); the loss is the
    squared difference of the two affinities, averaged over images that contain a nodule (0 when
    none does).
    """
    s_bg, s_fg = region_centres(student_feat, target)
    t_bg, t_fg = region_centres(teacher_feat, target)
    aff_s = F.cosine_similarity(s_bg, s_fg, dim=1, eps=1e-8)
    aff_t = F.cosine_similarity(t_bg, t_fg, dim=1, eps=1e-8)
    has_fg = (target.flatten(1).sum(dim=1) > 0).float()
    if has_fg.sum() == 0:
        return (aff_s * 0.0).sum()
    return ((aff_s - aff_t).pow(2) * has_fg).sum() / has_fg.sum()


def channel_wise(student_feat, teacher_feat, tau: float = 4.0) -> torch.Tensor:
    """CWD (Shu et al. 2021): per channel, softmax over locations at tau, KL(teacher || student).

    Both inputs must have the same channels (the student goes through a 1x1 adapter first). The
    KL is summed over locations, averaged over channels and images, and scaled by tau².
    """
    if student_feat.shape[-2:] != teacher_feat.shape[-2:]:
        student_feat = F.interpolate(
            student_feat, teacher_feat.shape[-2:], mode="bilinear", align_corners=False
        )
    n, c = teacher_feat.shape[:2]
    s = student_feat.float().reshape(n * c, -1) / tau
    t = teacher_feat.float().reshape(n * c, -1) / tau
    kl = (F.softmax(t, dim=1) * (F.log_softmax(t, dim=1) - F.log_softmax(s, dim=1))).sum(dim=1)
    return kl.mean() * tau * tau


# ------------------------------------------------------------------ modules --------------


class SegmentationLoss(nn.Module):
    """Dice + BCE on the ground truth, with weights from the config's ``loss`` section."""

    def __init__(self, dice: float = 1.0, bce: float = 1.0):
        super().__init__()
        self.w_dice, self.w_bce = float(dice), float(bce)

    def forward(self, logits, target, weight=None):
        """``weight`` (0/1 like ``target``): pixels of weight 0 (a host's own lesion) count
        neither as nodule nor as background."""
        return dice_bce(logits, target, self.w_dice, self.w_bce, weight)


class DistillationLoss(nn.Module):
    """All distillation terms selected in the config's ``distill`` section, with their weights.

    ``stages`` are indices into the smp encoder's feature list (0 = the input, 1..5 = strides
    2..32). The channel-wise term owns one 1x1 adapter per stage (student C -> teacher C); the
    adapters are trained with the student and are not part of the exported model.
    """

    def __init__(
        self,
        student_channels,
        teacher_channels,
        stages=(3, 4, 5),
        temperature: float = 4.0,
        response: float = 0.0,
        attention: float = 0.0,
        region_affinity: float = 0.0,
        channel_wise: float = 0.0,
        cwd_tau: float = 4.0,
    ):
        super().__init__()
        self.stages = tuple(int(s) for s in stages)
        self.temperature, self.cwd_tau = float(temperature), float(cwd_tau)
        self.w = {
            "response": float(response),
            "attention": float(attention),
            "region_affinity": float(region_affinity),
            "channel_wise": float(channel_wise),
        }
        self.adapters = nn.ModuleDict()
        if self.w["channel_wise"] > 0:
            for s in self.stages:
                self.adapters[str(s)] = nn.Conv2d(
                    student_channels[s], teacher_channels[s], 1, bias=False
                )

    @property
    def needs_features(self) -> bool:
        return any(self.w[k] > 0 for k in ("attention", "region_affinity", "channel_wise"))

    def forward(self, s_logits, t_logits, s_feats=None, t_feats=None, target=None) -> dict:
        """Return ``{term: weighted loss}`` for every term with a non-zero weight."""
        out = {}
        if self.w["response"] > 0:
            out["response"] = self.w["response"] * response_kd(s_logits, t_logits, self.temperature)
        if not self.needs_features:
            return out
        at = ra = cw = 0.0
        for s in self.stages:
            fs, ft = s_feats[s], t_feats[s].detach()
            if self.w["attention"] > 0:
                at = at + attention_transfer(fs, ft)
            if self.w["region_affinity"] > 0:
                ra = ra + region_affinity(fs, ft, target)
            if self.w["channel_wise"] > 0:
                cw = cw + channel_wise(self.adapters[str(s)](fs), ft, self.cwd_tau)
        n = len(self.stages)
        for key, val in (("attention", at), ("region_affinity", ra), ("channel_wise", cw)):
            if self.w[key] > 0:
                out[key] = self.w[key] * val / n
        return out


class EncoderFeatures:
    """Keeps the last list of encoder features of an smp model (forward hook on ``model.encoder``).

    Works through DistributedDataParallel (pass the inner module) and costs no second encoder pass.
    """

    def __init__(self, model: nn.Module):
        self.features = None
        self._handle = model.encoder.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.features = output

    def pop(self):
        feats, self.features = self.features, None
        return feats

    def remove(self):
        self._handle.remove()
