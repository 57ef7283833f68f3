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
    # Noise-robust baselines at their published defaults (baseline_losses.py): what a
    # user with noisy labels would try before NGL.
    'ce-ls': [dict(type='LabelSmoothingCELoss', label_smoothing=0.1, loss_weight=1.0)],
    'gce': [dict(type='GCELoss', q=0.7, loss_weight=1.0)],
    'sce': [dict(type='SCELoss', ce_weight=0.1, rce_weight=1.0, log_zero=-4.0,
                 loss_weight=1.0)],
}
# Loss types defined by the experiments (not the plugin): a config using one imports this.
BASELINE_MODULE = 'ngl_lab.baseline_losses'
BASELINE_TYPES = ('LabelSmoothingCELoss', 'GCELoss', 'SCELoss')


# A variant's name becomes a folder and a file name: plain characters only, so
# it can neither leave the work dir nor inject code into the config written there;
# short enough that the study's run folder (name, optimizer, seed) and the config
# file in it stay under the 255 bytes a file name may have.
VARIANT_NAME = re.compile(r'[A-Za-z0-9_.+-]+')
MAX_VARIANT_NAME = 100

# A loss's ``type``: the name of a registered class. mmengine imports a dotted
# ``type`` ('pkg.module.Class') as a module path, so it is refused.
LOSS_TYPE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def check_variant_name(name):
    if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name) or set(name) == {'.'}:
        raise ValueError(f'variant name {name!r} is not allowed: use letters, digits and '
                         '_ . + - only (it names a folder under the work dir)')
    if len(name) > MAX_VARIANT_NAME:
        raise ValueError(f'variant name {name[:20]}... has {len(name)} characters: use at most '
                         f'{MAX_VARIANT_NAME} (it names a folder and files under the work dir)')
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


def _check_types(spec, losses):
    """Every ``type`` (nested dicts too) names a registered class, never a module
    to import; no ``_scope_`` (mmengine imports ``<scope>.registry``)."""
    for d in losses:
        if not isinstance(d['type'], str):
            raise ValueError(f'loss spec {spec!r}: "type" must be the name of a loss, as a '
                             f"string (e.g. 'NGLLoss'), got {d['type']!r}")
        weight = d.get('loss_weight', 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f'loss spec {spec!r}: loss_weight must be a number (it is '
                             f"multiplied by each head's weight), got {weight!r}")
    stack = list(losses)
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            if '_scope_' in node:
                raise ValueError(f'loss spec {spec!r} sets "_scope_", which makes mmengine '
                                 'import a package; drop it: variants are built from '
                                 "mmseg's registry (ngl_mmseg's losses are registered there)")
            kind = node.get('type')
            if isinstance(kind, str) and not LOSS_TYPE.fullmatch(kind):
                raise ValueError(
                    f'loss spec {spec!r}: type {kind!r} is not the name of a registered loss '
                    '(a dotted path would make mmengine import it as a module); use the name '
                    "of a loss in mmseg's MODELS registry or ngl_mmseg's, e.g. 'NGLLoss' or "
                    "'CrossEntropyLoss'")
            stack.extend(node.values())


def parse_loss_spec(spec):
    """``'ngl'`` (a preset), or ``'NAME=<dict or list of dicts>'`` (a Python literal).

    Checked here, before anything is imported or built: the name, the literal,
    and that every ``type`` is a plain name (a dotted ``type`` is a module that
    mmengine would import). Whether each type is a registered loss that builds
    with these arguments: ``check_variant_losses``.

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
    if not isinstance(losses, list) or not losses or not all(
            isinstance(d, dict) and 'type' in d for d in losses):
        raise ValueError(f'loss spec {spec!r} must be a dict with "type", or a non-empty list '
                         'of them')
    _check_types(spec, losses)
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


def _add_import(cfg, module):
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    if module not in imports:
        cfg.custom_imports = dict(imports=imports + [module], allow_failed_imports=False)


def _head_losses(model_cfg):
    """(head name, its loss dicts) of every head of ``model_cfg``."""
    for key in ('decode_head', 'auxiliary_head'):
        heads = model_cfg.get(key)
        heads = heads if isinstance(heads, (list, tuple)) else [] if heads is None else [heads]
        for k, head in enumerate(heads):
            losses = head.get('loss_decode')
            losses = list(losses) if isinstance(losses, (list, tuple)) else \
                [] if losses is None else [losses]
            yield (f'{key}[{k}]' if len(heads) > 1 else key), losses


def _registered_names(registry):
    """The names in ``registry`` (its modules loaded), its ancestors and its children
    (the ``ngl_mmseg`` scope): looked up without ``Registry.get``, which imports
    a name it does not hold as a module."""
    registry.import_from_location()
    names = set()
    node = registry
    while node is not None:
        names |= set(node.module_dict)
        node = node.parent
    for child in registry.children.values():
        names |= set(child.module_dict)
    return names


def check_variant_losses(cfg, parsed):
    """Build every loss of every variant on ``cfg``'s heads, before anything trains.

    Each variant (``parsed``: the (name, loss dicts) of ``parse_loss_specs``) is
    applied to a copy of ``cfg`` (an mmengine ``Config``) by ``apply_loss_preset``,
    and every loss of every head is built with mmseg's ``MODELS`` registry, after
    importing ngl_mmseg and the modules of the config's ``custom_imports``: an
    unknown type, an argument the loss refuses or a head left without a loss fails
    here, not after the variants before it have trained.

    Raises:
        ValueError: Naming the variant, the head and the problem.
    """
    from mmengine.utils import import_modules_from_strings
    from mmseg.registry import MODELS

    import ngl_mmseg  # noqa: F401  (registers NGLLoss in mmseg's MODELS)
    if not list(_heads(cfg.get('model') or {})):
        raise ValueError("the config's model has no decode_head or auxiliary_head, so a loss "
                         'variant would change nothing: compare losses on a segmentor with a '
                         'decode head')
    for name, losses in parsed:
        variant = apply_loss_preset(copy.deepcopy(cfg), losses)
        imports = variant.get('custom_imports')  # the config's, and what the variant adds
        if imports:
            import_modules_from_strings(**imports)
        registered = _registered_names(MODELS)
        for head, head_losses in _head_losses(variant.model):
            if not head_losses:
                raise ValueError(f'variant {name!r} leaves the {head} without a loss: give '
                                 'it a dict with "type", or a non-empty list of them')
            for loss in head_losses:
                if loss['type'] not in registered:  # MODELS.build would import it as a module
                    raise ValueError(
                        f"variant {name!r}: the {head}'s loss type {loss['type']!r} is not "
                        "registered in mmseg's MODELS registry (nor ngl_mmseg's): use a loss "
                        "such as 'NGLLoss' or 'CrossEntropyLoss', or add the module that "
                        "registers it to the config's custom_imports")
                try:
                    built = MODELS.build(copy.deepcopy(loss))
                except Exception as exc:  # any refusal of the loss, named with its variant
                    problem = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
                    raise ValueError(
                        f"variant {name!r}: the {head}'s loss {dict(loss)!r} cannot be built "
                        f'({type(exc).__name__}: {problem}); fix the variant (a loss '
                        "registered in mmseg's MODELS or ngl_mmseg's, with arguments it "
                        'accepts)') from None
                if not hasattr(built, 'loss_name'):  # mmseg's heads name each loss by it
                    raise ValueError(
                        f"variant {name!r}: the {head}'s {loss['type']!r} is not a loss (it "
                        "has no loss_name, which mmseg's heads need): use a loss such as "
                        "'NGLLoss' or 'CrossEntropyLoss'")
    return parsed


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
        _add_import(cfg, 'ngl_mmseg')
        hooks.append(dict(type='NGLMonitorHook'))
    if any(d['type'] in BASELINE_TYPES for d in losses):
        _add_import(cfg, BASELINE_MODULE)
    cfg.custom_hooks = hooks
    return cfg
