"""Named loss set-ups ("presets") that swap the losses of a config's heads.

Used by ``tools/compare_losses.py`` and the benchmark. Each head keeps its own
weight: a preset's loss weights are multiplied by the weight of the head's
current first loss (so an auxiliary head at 0.4 stays at 0.4).
"""
import ast
import copy
import re

LOSS_PRESETS = {
    'ce': [dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)],
    # The recipe the trainability study picked (docs/training.md): the
    # CE-matched weight and a CE warm-up over the first 10% of iterations.
    'ngl': [dict(type='NGLLoss', loss_weight=1.0, auto_weight=True, ce_warmup=0.1)],
    # The paper's formula and nothing else: the strict A/B against CE.
    'ngl-plain': [dict(type='NGLLoss', loss_weight=1.0)],
    'ngl-auto': [dict(type='NGLLoss', loss_weight=1.0, auto_weight=True)],
    # Candidates for many classes under AdamW: NGL from the first iteration, its target
    # logit raised (to where NGL's gradient is steepest) and the bias annealed to 0 over
    # the first 10% (target_bias_warmup), alone or beside the CE warm-up.
    'ngl-bias': [dict(type='NGLLoss', loss_weight=1.0, auto_weight=True,
                      target_bias_warmup=0.1)],
    'ngl-bias+ce-warmup': [dict(type='NGLLoss', loss_weight=1.0, auto_weight=True,
                                ce_warmup=0.1, target_bias_warmup=0.1)],
    # The authors' own training: sigmoid scaling of the softmax (their TF NGL(scaling=True)).
    'ngl-scaling': [dict(type='NGLLoss', scaling=True, loss_weight=1.0)],
    'ngl-scaling-auto': [dict(type='NGLLoss', scaling=True, loss_weight=1.0, auto_weight=True)],
    # A CE term kept in the objective: its own variant, not NGL.
    'ngl+ce': [dict(type='NGLLoss', loss_weight=1.0, auto_weight=True, ce_warmup=0.1),
               dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)],
    'ce-avg-non-ignore': [dict(type='CrossEntropyLoss', avg_non_ignore=True, loss_weight=1.0)],
    # CE given the knob auto_weight turns for NGL: a loss weight, which under SGD is a
    # learning-rate factor (NGL's gradient grows past CE's once p_t rises; a fair study
    # lets CE have a larger step too). Under Adam/AdamW a loss weight cancels out.
    'ce-w3': [dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=3.0)],
    'ce-w10': [dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=10.0)],
}


# A variant's name becomes a folder and a file name: plain characters only, so
# it can neither leave the work dir nor inject code into the config written there.
VARIANT_NAME = re.compile(r'[A-Za-z0-9_.+-]+')


def check_variant_name(name):
    if not VARIANT_NAME.fullmatch(name) or set(name) == {'.'}:
        raise ValueError(f'variant name {name!r} is not allowed: use letters, digits and '
                         '_ . + - only (it names a folder under the work dir)')
    return name


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)


def parse_loss_spec(spec):
    """``'ngl'`` (a preset), or ``'NAME=<dict or list of dicts>'`` (a Python literal).

    Returns:
        tuple[str, list[dict]]: The variant's name and its loss dicts.
    """
    if spec in LOSS_PRESETS:
        return spec, copy.deepcopy(LOSS_PRESETS[spec])
    name, sep, literal = spec.partition('=')
    if not sep or not name:
        raise ValueError(f'unknown loss preset {spec!r}: use one of {sorted(LOSS_PRESETS)} '
                         "or NAME=dict(...) as a literal, e.g. \"ngl_a2={'type': 'NGLLoss', "
                         "'alpha': 2.0}\"")
    check_variant_name(name)
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f'loss spec {spec!r} is not a Python literal: {exc}') from None
    losses = [value] if isinstance(value, dict) else value
    if not isinstance(losses, list) or not all(isinstance(d, dict) and 'type' in d
                                               for d in losses):
        raise ValueError(f'loss spec {spec!r} must be a dict with "type", or a list of them')
    for text in _strings(losses):
        if '{{' in text or '}}' in text:
            # mmengine's Config.fromfile substitutes {{ ... }} templates in the
            # written config before running it: refused, not escaped.
            raise ValueError(f'loss spec {spec!r} holds a config template marker ("{{{{" or '
                             '"}}}}"), which is not allowed in a loss variant')
    return name, losses


def parse_loss_specs(specs):
    """Every spec parsed (before anything trains); refuses two variants of one name."""
    parsed = [parse_loss_spec(spec) for spec in specs]
    names = [name for name, _ in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'variant {repeated[0]!r} is named more than once: each variant '
                         'is one run folder and one row of the results')
    return parsed


def _heads(model_cfg):
    for key in ('decode_head', 'auxiliary_head'):
        head = model_cfg.get(key)
        if isinstance(head, (list, tuple)):
            yield from head
        elif head is not None:
            yield head


def apply_loss_preset(cfg, spec):
    """Replace the losses of every head of ``cfg.model`` with those of ``spec``."""
    _, losses = parse_loss_spec(spec) if isinstance(spec, str) else ('custom', spec)
    for head in _heads(cfg.model):
        current = head.get('loss_decode')
        first = current[0] if isinstance(current, (list, tuple)) else (current or {})
        scale = first.get('loss_weight', 1.0)
        new = []
        for loss in copy.deepcopy(losses):
            loss['loss_weight'] = loss.get('loss_weight', 1.0) * scale
            new.append(loss)
        head['loss_decode'] = new[0] if len(new) == 1 else new
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') != 'NGLMonitorHook']
    if any(d['type'] == 'NGLLoss' for d in losses):
        imports = cfg.get('custom_imports', {}).get('imports', [])
        if 'ngl_mmseg' not in imports:
            cfg.custom_imports = dict(imports=list(imports) + ['ngl_mmseg'],
                                      allow_failed_imports=False)
        hooks.append(dict(type='NGLMonitorHook'))
    cfg.custom_hooks = hooks
    return cfg
