"""The NGL formula written plainly in float64: the independent reference of the tests."""
import torch

ALPHA = 2.4092


def ref_pixel_loss(logits, label, alpha=ALPHA, scaling=False, ignore_index=255):
    """Mean over classes of exp(alpha - p(1+y)) - cos(cos(sin p)); ignored pixels 0.

    p = softmax(logits) over dim 1; with ``scaling``, p = sigmoid(softmax(logits)).
    """
    x = logits.double()
    num_classes = x.shape[1]
    e = torch.exp(x - x.max(dim=1, keepdim=True).values)
    p = e / e.sum(dim=1, keepdim=True)
    if scaling:
        p = 1.0 / (1.0 + torch.exp(-p))
    valid = label != ignore_index
    y = torch.zeros_like(p)
    for c in range(num_classes):
        y[:, c] = ((label == c) & valid).double()
    per_class = torch.exp(alpha - p * (1 + y)) - torch.cos(torch.cos(torch.sin(p)))
    return per_class.mean(dim=1) * valid.double()


def ref_loss(logits, label, weight=None, class_weight=None, reduction='mean',
             avg_factor=None, ignore_index=255, avg_non_ignore=True, alpha=ALPHA,
             scaling=False, loss_weight=1.0):
    loss = ref_pixel_loss(logits, label, alpha, scaling, ignore_index)
    valid = label != ignore_index
    if class_weight is not None:
        cw = torch.tensor(class_weight, dtype=torch.float64)
        pixel_weight = torch.zeros_like(loss)
        pixel_weight[valid] = cw[label[valid]]
        loss = loss * pixel_weight
    if weight is not None:
        loss = loss * weight.double()
    if reduction == 'none':
        out = loss
    elif reduction == 'sum':
        out = loss.sum()
    else:
        if avg_factor is not None:
            denom = avg_factor
        elif avg_non_ignore:
            denom = pixel_weight.sum() if class_weight is not None else valid.sum().double()
        else:
            denom = loss.numel()
        out = loss.sum() / denom if float(denom) > 0 else loss.sum() * 0
    return out * loss_weight


def literal_classification_mean(logits, label, alpha=ALPHA):
    """The authors' reference on (M, C): torch.mean over all M*C elements."""
    p = torch.softmax(logits.double(), dim=1)
    y = torch.nn.functional.one_hot(label, logits.shape[1]).double()
    return torch.mean(torch.exp(alpha - p * (1 + y)) - torch.cos(torch.cos(torch.sin(p))))
