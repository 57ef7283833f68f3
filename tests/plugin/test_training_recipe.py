"""What NGLLoss adds for training: the CE-matched weight, the CE warm-up, the
reference values behind the progress metric, and NGLMonitorHook."""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FakeRunner, head_with_loss
from reference import ALPHA, ref_loss

from ngl_mmseg import NGLLoss
from ngl_mmseg.hooks import NGLMonitorHook
from ngl_mmseg.losses.recipe import ce_matched_weight, ngl_reference_values


@pytest.mark.parametrize('num_classes', [2, 21, 171])
@pytest.mark.parametrize('scaling', [False, True])
def test_auto_weight_gives_a_fresh_head_the_gradient_of_cross_entropy(num_classes, scaling):
    """Uniform logits (a fresh head): with auto_weight, NGL's gradient on every
    logit equals CE's (autograd through the float64 formula, not the closed form)."""
    logits = torch.zeros(3, num_classes, 2, 2, dtype=torch.float64)
    label = torch.randint(0, num_classes, (3, 2, 2), generator=torch.Generator().manual_seed(0))
    x = logits.clone().requires_grad_()
    ref_loss(x, label, scaling=scaling).backward()
    x_ce = logits.clone().requires_grad_()
    F.cross_entropy(x_ce, label).backward()
    weight = ce_matched_weight(num_classes, ALPHA, scaling)
    assert torch.allclose(x.grad * weight, x_ce.grad, rtol=1e-6, atol=1e-12)
    if not scaling and num_classes >= 21:  # C^2 / e^alpha: the large-C limit
        assert weight == pytest.approx(num_classes ** 2 / math.exp(ALPHA), rel=0.2)


def test_auto_weight_multiplies_loss_weight():
    logits = torch.randn(2, 21, 4, 4)
    label = torch.randint(0, 21, (2, 4, 4))
    plain = NGLLoss(loss_weight=0.4)(logits, label)
    auto = NGLLoss(loss_weight=0.4, auto_weight=True)(logits, label)
    assert torch.allclose(auto, plain * ce_matched_weight(21), rtol=1e-6)


@pytest.mark.parametrize('num_classes', [2, 21, 171])
@pytest.mark.parametrize('scaling', [False, True])
def test_reference_values_bound_the_loss(num_classes, scaling):
    at_chance, minimum = ngl_reference_values(num_classes, ALPHA, scaling)
    label = torch.zeros(1, dtype=torch.long)
    uniform = ref_loss(torch.zeros(1, num_classes, dtype=torch.float64), label, scaling=scaling)
    assert uniform.item() == pytest.approx(at_chance, rel=1e-12)
    # No logits give less than the minimum; the best of many come close to it.
    g = torch.Generator().manual_seed(0)
    best = float('inf')
    for scale in (0.5, 2.0, 4.0, 6.0, 8.0):
        z = torch.randn(4000, num_classes, generator=g, dtype=torch.float64) * 0.1
        z[:, 0] += scale
        values = ref_loss(z, label.expand(4000), reduction='none', scaling=scaling)
        assert values.min().item() >= minimum - 1e-9
        best = min(best, values.min().item())
    assert best - minimum < 0.05 * (at_chance - minimum)
    assert minimum < at_chance


def test_ce_warmup_goes_from_cross_entropy_to_ngl(message_hub):
    logits = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    label = torch.randint(0, 5, (2, 4, 4))
    label[0, 0, 0] = 255
    ce = F.cross_entropy(logits, label, ignore_index=255)
    ngl = ref_loss(logits, label)
    loss = NGLLoss(impl='torch', ce_warmup=0.1, loss_weight=0.5)
    message_hub.update_info('max_iters', 1000)
    for it, share in ((0, 1.0), (50, 0.5), (100, 0.0), (700, 0.0)):
        message_hub.update_info('iter', it)
        expected = 0.5 * (share * ce + (1 - share) * ngl)
        assert loss(logits, label).item() == pytest.approx(expected.item(), rel=1e-6), it
    loss.eval()  # validation and inference: NGL only
    message_hub.update_info('iter', 0)
    assert loss(logits, label).item() == pytest.approx(0.5 * ngl.item(), rel=1e-6)


def test_ce_warmup_is_capped_at_a_tenth_of_training():
    with pytest.raises(ValueError, match=r'ce_warmup .* \[0, 0.1\]'):
        NGLLoss(ce_warmup=0.3)


def _drive(hook, runner, loss, logits_fn, label, iters):
    for it in range(iters):
        runner.iter = it
        loss(logits_fn(it), label)
        hook.after_train_iter(runner, it, outputs={'decode.acc_seg': torch.tensor(1.0)})


def test_monitor_warns_when_the_loss_stays_at_chance(caplog, message_hub):
    loss = NGLLoss(impl='torch')
    runner = FakeRunner(head_with_loss(loss))
    hook = NGLMonitorHook(check_iter=30)
    label = torch.randint(0, 171, (2, 4, 4))
    with caplog.at_level('WARNING', logger='test_monitor'):
        _drive(hook, runner, loss, lambda it: torch.randn(2, 171, 4, 4) * 1e-3, label, 40)
    assert hook.warned
    message = NGLMonitorHook.stuck_message(runner, loss, 0.0)
    assert 'NGL is not learning' in message and 'auto_weight=True' in message
    assert '2675x smaller' in message
    progress = runner.message_hub.get_scalar('train/decode.ngl_progress').current()
    assert abs(progress) < 0.01


def test_monitor_stays_quiet_when_the_loss_moves(message_hub):
    loss = NGLLoss(impl='torch', auto_weight=True)
    runner = FakeRunner(head_with_loss(loss))
    hook = NGLMonitorHook(check_iter=30)
    label = torch.randint(0, 21, (2, 4, 4))

    def learning(it):  # the target logit grows: the loss walks towards its minimum
        z = torch.zeros(2, 21, 4, 4)
        z.scatter_(1, label.unsqueeze(1), 0.1 * it)
        return z
    _drive(hook, runner, loss, learning, label, 40)
    assert not hook.warned
    progress = runner.message_hub.get_scalar('train/decode.ngl_progress').current()
    assert 0.1 < progress <= 1.0


@pytest.mark.parametrize('num_classes', [21, 171])
def test_default_target_bias_is_where_ngls_target_gradient_is_steepest(num_classes):
    """Autograd through the float64 formula: at the default bias a pixel at chance
    gets the largest push on its target logit; at ln(C - 1) (p_t = 1/2, past NGL's
    soft minimum) the push already points down."""
    from ngl_mmseg.losses.recipe import default_target_bias

    def target_grad(bias):
        z = torch.zeros(1, num_classes, dtype=torch.float64)
        z[0, 0] = bias
        z.requires_grad_(True)
        ref_loss(z, torch.zeros(1, dtype=torch.long)).backward()
        return z.grad[0, 0].item()

    best = default_target_bias(num_classes)
    assert target_grad(best) < 0  # pushes the target up
    for other in (0.0, best - 0.3, best + 0.3, best + 1.0):
        assert target_grad(best) <= target_grad(other) + 1e-12, other
    assert target_grad(math.log(num_classes - 1)) > 0  # pushes it down
    # At chance the push is weaker: 1.7x at 21 classes, 11x at 171.
    factor = 1.5 if num_classes == 21 else 10
    assert target_grad(best) < factor * target_grad(0.0) < 0
