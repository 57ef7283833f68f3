"""Where a training run's time goes: start-up, data loading, the training step, the
hooks after it, validation (the selection split, then what ``after_val_epoch`` hooks
add, e.g. the report split of a tuned study) and checkpoints.

    python -m ngl_lab.run_profile CONFIG [--work-dir D] [--threads N] [--cfg-options ...]
                                         [--out profile.json] [--flops]
                                         [--as-study-run DATA_ROOT --iters N [--lr LR]
                                          [--loss SPEC]] [--ops N | --loss-time N]

CONFIG is trained in this process as ``ngl_mmseg.cli.train`` trains it (the same
config preparation, mmengine's Runner), with two hooks that take the time at the
start and at the end of every callback, and ``runner.save_checkpoint`` timed. A
study's run folder holds the config it trained (``<run>/config.py``): profiling that
file profiles a study run, and ``--as-study-run DATA_ROOT`` writes one first: the
config as a tuned study trains it (``study_config.write_run_config``: the NGL recipe,
or the study variant ``--loss`` names, AdamW, seed 0, ``--iters``, the report split
``test.txt`` scored at every validation, a resume point after each validation but
the last and a checkpoint at the end, deterministic). ``--flops`` adds the
multiply-adds of the model's parts at the training crop (mmengine's
``FlopAnalyzer``), which says where the step's time can go down. ``--ops N`` adds
where the step's time goes op by op: ``torch.profiler`` over the last N training
iterations (past the recipe's warm-ups, which end by a tenth of the run), the ops
that took the most time themselves, per iteration. The profiler's own cost per op
is in those iterations' phases too, so profile with ``--ops`` apart from the run
whose phases you quote. ``--loss-time N`` times the heads' losses, forward and backward,
inside the training step over the last N iterations by the clock alone (``loss_clock``),
which says what share of the step the loss takes where ``--ops`` would slow it.
"""
import time

START = time.perf_counter()  # before torch, mmengine and mmseg are imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import os.path as osp  # noqa: E402


class _Clock:
    """Marks shared by the two hooks (one runs first in every callback, one last)."""

    def __init__(self):
        self.seconds = dict(data=0.0, step=0.0, after_iter_hooks=0.0, validation=0.0,
                            after_val_hooks=0.0, checkpoints=0.0)
        self.iters = self.validations = self.checkpoint_saves = 0
        self.last_iter_end = self.val_start = self.val_split_end = None
        self.train_start = self.iter_start = self.after_iter_start = None
        # checkpoints saved inside the after-iteration hooks (CheckpointHook), and between
        # a validation's end and the next iteration (the study's resume points): each
        # taken out of the phase that would count it too
        self.checkpoint_in_iter = self.checkpoint_between = 0.0
        self.in_after_iter = False


def _hooks(clock):
    """The first and the last hook of every callback, as mmengine orders them by priority."""
    from mmengine.hooks import Hook

    class First(Hook):
        priority = 'HIGHEST'

        def before_train(self, runner):
            clock.train_start = clock.last_iter_end = time.perf_counter()

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            clock.iter_start = time.perf_counter()
            clock.seconds['data'] += (clock.iter_start - clock.last_iter_end
                                      - clock.checkpoint_between)
            clock.checkpoint_between = 0.0

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            clock.after_iter_start = time.perf_counter()
            clock.seconds['step'] += clock.after_iter_start - clock.iter_start
            clock.iters += 1
            clock.checkpoint_in_iter = 0.0
            clock.in_after_iter = True

        def before_val_epoch(self, runner):
            clock.val_start = time.perf_counter()

        def after_val_epoch(self, runner, metrics=None):
            clock.val_split_end = time.perf_counter()
            clock.seconds['validation'] += clock.val_split_end - clock.val_start

    class Last(Hook):
        priority = 'LOWEST'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            now = time.perf_counter()
            clock.seconds['after_iter_hooks'] += (now - clock.after_iter_start
                                                  - clock.checkpoint_in_iter)
            clock.in_after_iter = False
            clock.last_iter_end = now

        def after_val_epoch(self, runner, metrics=None):
            now = time.perf_counter()
            clock.seconds['after_val_hooks'] += now - clock.val_split_end
            clock.validations += 1
            # validation runs between two iterations: not the next one's data time
            clock.last_iter_end = now

    return First(), Last()


OPS_SHOWN = 15


def last_iters_hook(num_iters, clock):
    """The base of a hook that watches the last ``num_iters`` training iterations:
    ``start()`` before the first of them, ``each_iter()`` after each,
    ``finish(iters, step_seconds)`` after the last, with the iterations watched and the
    step's seconds in them (the clock's marks). Its priority is the lowest, so it runs
    after the clock's hooks in every callback: ``start()`` falls in the first watched
    step's time and ``each_iter()`` in the next iteration's data time (two Python calls),
    ``finish()``'s work after the last iteration in no phase (``--ops`` books its
    profiler's as ``op_profiler``)."""
    from mmengine.hooks import Hook

    class LastIters(Hook):
        priority = 'LOWEST'
        watching = False

        def start(self):
            pass

        def each_iter(self):
            pass

        def finish(self, iters, step_seconds):
            raise NotImplementedError

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if not self.watching and runner.iter >= runner.max_iters - num_iters:
                self.watching, self.iters = True, 0
                self.step_before = clock.seconds['step']
                self.start()

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if not self.watching:
                return
            self.iters += 1
            self.each_iter()
            if runner.iter + 1 == runner.max_iters:
                self.finish(self.iters, clock.seconds['step'] - self.step_before)

    return LastIters


def _ops_hook(num_iters, found, clock):
    """A hook that runs ``torch.profiler`` over the last ``num_iters`` training iterations
    and puts the ops that took the most self CPU time into ``found``; the profiler's own
    processing of its events, after those iterations, is the clock's ``op_profiler``."""
    import torch

    class OpProfile(last_iters_hook(num_iters, clock)):
        def start(self):
            self.profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.started = time.perf_counter()

        def finish(self, iters, step_seconds):
            end = time.perf_counter()
            self.profiler.__exit__(None, None, None)
            found.update(op_table(self.profiler.key_averages(), iters, end - self.started,
                                  step_seconds))
            clock.seconds['op_profiler'] = time.perf_counter() - end

    return OpProfile()


def op_table(averages, num_iters, seconds, step_seconds):
    """The ``OPS_SHOWN`` ops of ``averages`` (``torch.profiler``'s ``key_averages()``)
    with the most self CPU time, per iteration over ``num_iters`` iterations that took
    ``seconds`` in all (data loading, hooks and any validation between them included),
    ``step_seconds`` of it in the training step."""
    events = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)
    top = [dict(name=e.key, self_ms_per_iter=e.self_cpu_time_total / 1e3 / num_iters,
                calls_per_iter=e.count / num_iters) for e in events[:OPS_SHOWN]]
    return dict(iters=num_iters, ms_per_iter=1e3 * seconds / num_iters,
                step_ms_per_iter=1e3 * step_seconds / num_iters, top=top)


def _time_checkpoints(runner, clock):
    save = runner.save_checkpoint

    def timed_save(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return save(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t0
            clock.seconds['checkpoints'] += spent
            clock.checkpoint_saves += 1
            if clock.in_after_iter:
                clock.checkpoint_in_iter += spent
            else:
                clock.checkpoint_between += spent

    runner.save_checkpoint = timed_save


def model_flops(cfg):
    """Multiply-adds of a training forward at the config's crop, batch 1: the total and
    each part's (backbone stages, heads)."""
    import torch
    from mmengine.analysis import FlopAnalyzer
    from mmseg.registry import MODELS

    from ngl_mmseg.compat import sync_bn_to_bn
    model_cfg = cfg.model.copy()
    sync_bn_to_bn(model_cfg)
    model = MODELS.build(model_cfg).eval()
    size = tuple(model_cfg.data_preprocessor.get('size') or (64, 64))
    analyzer = FlopAnalyzer(model, (torch.zeros(1, 3, *size), ))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_module = analyzer.by_module()
    parts = [name for name in by_module if name.count('.') == 1 and
             name.split('.')[0] in ('backbone', 'decode_head', 'auxiliary_head')]
    parts = [p for p in parts if by_module[p]]
    return dict(size=list(size), total=by_module[''], parts={p: by_module[p] for p in parts})


PHASES = (('startup', 'start-up: imports, config, Runner, datasets and model built'),
          ('data', 'data loading (waiting for the next batch)'),
          ('step', 'training step (forward, backward, optimizer)'),
          ('after_iter_hooks', 'hooks after each iteration (logging, schedulers)'),
          ('validation', 'validation on the selection split'),
          ('after_val_hooks', 'after validation (report split, train-set mIoU hooks)'),
          ('checkpoints', 'checkpoints'),
          ('op_profiler', "with --ops: the profiler's processing of its events"),
          ('other', 'the rest (loop set-up, teardown)'))


def profile(config, work_dir, cfg_options=None, flops=False, ops=None, loss_time=None):
    """Train ``config`` once, timed; returns the profile (seconds per phase; with ``ops``,
    the ops of the last ``ops`` iterations; with ``loss_time``, the heads' losses' forward
    and backward in the step over the last ``loss_time`` iterations)."""
    import torch
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS  # noqa: F401  (mmseg's registry scope)

    import ngl_mmseg  # noqa: F401
    from ngl_mmseg.launch import load_config, prepare_config
    cfg = load_config(config, cfg_options=cfg_options, work_dir=work_dir)
    prepare_config(cfg, splits=('train', 'val'))
    max_iters = cfg.train_cfg.get('max_iters')
    for option, n in (('--ops', ops), ('--loss-time', loss_time)):
        if n and max_iters is not None and n > max_iters:
            raise ValueError(f'{option} {n}: the run has only {max_iters} iterations')
    clock = _Clock()
    runner = Runner.from_cfg(cfg)
    for hook in _hooks(clock):
        runner.register_hook(hook)
    found_ops = {}
    if ops:
        runner.register_hook(_ops_hook(ops, found_ops, clock))
    found_loss = {}
    if loss_time:
        from .loss_clock import loss_time_hook
        runner.register_hook(loss_time_hook(last_iters_hook(loss_time, clock), found_loss))
    _time_checkpoints(runner, clock)
    runner.train()
    end = time.perf_counter()
    seconds = dict(startup=clock.train_start - START, **clock.seconds)
    seconds['other'] = end - START - sum(seconds.values())
    out = dict(config=config, iters=clock.iters, validations=clock.validations,
               checkpoint_saves=clock.checkpoint_saves,
               threads=torch.get_num_threads(), total=end - START, seconds=seconds,
               batch_size=cfg.train_dataloader.batch_size,
               num_workers=cfg.train_dataloader.get('num_workers', 0))
    if flops:
        out['flops'] = model_flops(cfg)
    if ops:
        if not found_ops:
            raise RuntimeError(f'--ops {ops}: the run ended before its last {ops} iterations '
                               'were profiled')
        out['ops'] = found_ops
    if loss_time:
        if not found_loss:
            raise RuntimeError(f'--loss-time {loss_time}: the run ended before its last '
                               f'{loss_time} iterations were timed')
        out['loss_time'] = found_loss
    return out


def profile_table(result):
    """The profile as a Markdown table: seconds, share and milliseconds per iteration."""
    total, iters = result['total'], max(result['iters'], 1)
    lines = ['| phase | seconds | share | ms per iteration |', '|---|---|---|---|']
    for key, label in PHASES:
        if key not in result['seconds']:  # op_profiler: only with --ops
            continue
        s = result['seconds'][key]
        lines.append(f'| {label} | {s:.1f} | {100 * s / total:.0f}% | {1e3 * s / iters:.1f} |')
    lines.append(f'| **total** ({result["iters"]} iterations, {result["validations"]} '
                 f'validations, {result["threads"]} thread(s)) | {total:.1f} | 100% | '
                 f'{1e3 * total / iters:.1f} |')
    if 'flops' in result:
        f = result['flops']
        lines += ['', f'Multiply-adds of one {f["size"][0]}x{f["size"][1]} image '
                  f'(forward): {f["total"] / 1e6:.1f} M', '', '| part | M | share |',
                  '|---|---|---|']
        lines += [f'| {name} | {n / 1e6:.1f} | {100 * n / f["total"]:.0f}% |'
                  for name, n in f['parts'].items()]
    if result.get('ops'):
        o = result['ops']
        lines += ['', f'Ops of the last {o["iters"]} iterations (torch.profiler: '
                  f'{o["ms_per_iter"]:.1f} ms an iteration with it, '
                  f'{o["step_ms_per_iter"]:.1f} of them in the training step), '
                  'by their own time:', '',
                  '| op | ms per iteration | share | calls per iteration |', '|---|---|---|---|']
        lines += [f'| {t["name"]} | {t["self_ms_per_iter"]:.1f} | '
                  f'{100 * t["self_ms_per_iter"] / o["ms_per_iter"]:.0f}% | '
                  f'{t["calls_per_iter"]:g} |' for t in o['top']]
    if result.get('loss_time'):
        lt = result['loss_time']
        lines += ['', f'The losses in the step, over the last {lt["iters"]} iterations '
                  f'({", ".join(lt["losses"])}; {lt["calls_per_iter"]:g} calls an iteration):',
                  '', '| part | ms per iteration | share of the step |', '|---|---|---|']
        lines += [f'| {label} | {lt[key]:.1f} | {100 * lt[key] / lt["step_ms_per_iter"]:.0f}% |'
                  for label, key in (('training step', 'step_ms_per_iter'),
                                     ('losses, forward', 'forward_ms_per_iter'),
                                     ('losses, backward', 'backward_ms_per_iter'),
                                     ('losses, both', 'loss_ms_per_iter'))]
    return '\n'.join(lines)


def _study_run_config(args, work_dir):
    """CONFIG as a tuned study trains it (``--loss``, AdamW at ``--lr``, seed 0, the
    ``--cfg-options`` a spec's study would give), written into ``work_dir``; its path. The
    report split is the synthetic makers' test split of the data root's layout."""
    from .presets import parse_loss_spec
    from .study_config import write_run_config
    from .study_spec import TEST_SPLITS
    layout = 'voc' if osp.isdir(osp.join(args.as_study_run, 'ImageSets')) else 'coco-stuff'
    return write_run_config(args.config, parse_loss_spec(args.loss)[1], 'adamw', 0, work_dir,
                            cfg_options=args.cfg_options, data_root=args.as_study_run,
                            iters=args.iters, lr=args.lr, report_split=TEST_SPLITS[layout])


def main():
    """``python -m ngl_lab.run_profile`` (``tools/profile_run.py``)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Where a training run spends its time')
    parser.add_argument('config')
    parser.add_argument('--work-dir', default=None,
                        help='where the run writes (default: work_dirs/profile/<config name>)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (a study pins 1 per run with --jobs 2 on 2 cores)')
    parser.add_argument('--flops', action='store_true',
                        help="also count the model parts' multiply-adds")
    parser.add_argument('--out', default=None, help='write the profile as JSON here too')
    parser.add_argument('--as-study-run', metavar='DATA_ROOT',
                        help='profile CONFIG as a tuned study run on this synthetic dataset '
                        '(VOC or COCO-Stuff layout; written into --work-dir first)')
    parser.add_argument('--iters', type=int, help='with --as-study-run: its iterations')
    parser.add_argument('--lr', type=float, default=4e-3,
                        help='with --as-study-run: its AdamW learning rate (default 4e-3)')
    parser.add_argument('--loss', default=None,
                        help="with --as-study-run: the study variant it trains, a preset "
                        "('ce', 'ngl', 'ngl-plain', ...) or NAME=dict(...) as tools/study_ngl.py "
                        "takes it (default 'ngl', the recipe)")
    parser.add_argument('--ops', type=int, default=None, metavar='N',
                        help='also profile the last N training iterations op by op '
                        '(torch.profiler)')
    parser.add_argument('--loss-time', type=int, default=None, metavar='N',
                        help="also time the heads' losses (forward and backward) inside the "
                        'training step over the last N iterations, without a profiler')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.as_study_run and not args.iters:
        parser.error('--as-study-run needs --iters')
    if args.loss is not None and not args.as_study_run:
        parser.error('--loss names the loss of --as-study-run; a CONFIG given as it is '
                     'trains its own losses')
    args.loss = args.loss or 'ngl'
    try:
        from .presets import parse_loss_spec
        parse_loss_spec(args.loss)
    except ValueError as exc:
        parser.error(f'--loss: {exc}')
    if args.ops is not None and args.ops < 1:
        parser.error(f'--ops must be a positive integer, not {args.ops}')
    if args.loss_time is not None and args.loss_time < 1:
        parser.error(f'--loss-time must be a positive integer, not {args.loss_time}')
    if args.ops and args.loss_time:
        parser.error('--ops and --loss-time: the profiler slows the ops it watches, so time '
                     'the losses in a run of their own')
    for option, n in (('--ops', args.ops), ('--loss-time', args.loss_time)):
        if n and args.as_study_run and n > args.iters:
            parser.error(f'{option} {n}: the run has only {args.iters} iterations (--iters)')
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f'--threads must be a positive integer, not {args.threads}')
        import torch
        torch.set_num_threads(args.threads)
    work_dir = args.work_dir or osp.join(
        'work_dirs', 'profile', osp.splitext(osp.basename(args.config))[0])
    if osp.isdir(work_dir) and os.listdir(work_dir):
        parser.error(f'{work_dir} is not empty: name a new --work-dir')
    config = args.config
    if args.as_study_run:
        config = _study_run_config(args, work_dir)
    result = profile(config, work_dir, args.cfg_options, args.flops, args.ops, args.loss_time)
    print(profile_table(result))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
