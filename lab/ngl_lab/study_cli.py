"""The study's command line (``tools/study_ngl.py``, ``python -m ngl_lab.study_cli``,
``ngl-lab-study``): arguments in, then one of a spec run (``study_spec``), a
rebuilt report (``study_rebuild``: ``--replot``, ``--collect``, ``--merge``)
or one study (``study``); a refused argument or folder ends it with one usage
line. Nothing the engine imports imports this module."""
import argparse
import contextlib
import sys

from .presets import LOSS_PRESETS
from .study import RunsFailed, StudySettings, study
from .study_config import OPTIMIZERS
from .study_rebuild import collect, merge, replot
from .study_spec import export_finished, run_spec
from .tool_args import add_cfg_options, default_work_dir, refusals_as_usage_errors, tool_parser

# The modes that do not train one study from the command line's grid, in the
# order their clashes are named.
MODES = ('merge', 'collect', 'replot', 'spec')
# What a spec run takes from the command line (the spec says everything else).
SPEC_ARGUMENTS = ('spec', 'only', 'with_published', 'jobs', 'gpus_per_run', 'threads_per_run',
                  'export_finished')


def _add_grid_arguments(parser):
    parser.add_argument('config', nargs='?', help='the config to train (not with --merge)')
    parser.add_argument('--variants', nargs='+', default=['ce', 'ngl-plain', 'ngl'],
                        help=f'presets {sorted(LOSS_PRESETS)} or NAME=<dict literal>')
    parser.add_argument('--optimizers', nargs='+', default=['sgd'],
                        help=f"config (the config's own) or {sorted(OPTIMIZERS)}")
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--lrs', nargs='+', type=float,
                        help="absolute learning rates, replacing the optimizer's (default: "
                        "the optimizer's own); more than one needs --report-split")
    parser.add_argument('--search-seeds', nargs='+', type=int,
                        help='with --lrs: only these seeds train at every lr; each variant '
                        'then trains --seeds at the lr best on the validation split')
    parser.add_argument('--extend-edges', type=int, default=2,
                        help='with --search-seeds: when a variant\'s best lr is the largest '
                        '(smallest) tried, also try twice (half) it, up to this many more '
                        'rates (default 2; 0: the grid only)')
    parser.add_argument('--double-seeds', nargs='+', type=int,
                        help='with --search-seeds and --iters: these seeds also train each '
                        "variant's chosen lr at twice --iters (the plateau check)")
    parser.add_argument('--wide-seeds', nargs='+', type=int,
                        help='with --search-seeds: more seeds for a variant whose paired '
                        'interval against CE is wider than --wide-half-width, and for CE')
    parser.add_argument('--wide-half-width', type=float, default=5.0,
                        help='see --wide-seeds (default 5 mIoU)')
    parser.add_argument('--report-split', nargs='+', metavar='KEY=VALUE',
                        help='fields of the validation dataset that make it the report split, '
                        'scored at every validation (e.g. ann_file=ImageSets/Segmentation/'
                        'test.txt, which make_synthetic_dataset.py --num-test writes)')


def _add_run_arguments(parser):
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at once, each with its share of the CPU threads '
                        '(default 1)')
    parser.add_argument('--gpus-per-run', type=int, default=0,
                        help='with --jobs: GPUs given to each run (CUDA_VISIBLE_DEVICES)')
    parser.add_argument('--threads-per-run', type=int,
                        help='CPU threads per run (default: CPU cores / --jobs)')
    parser.add_argument('--work-dir', help='default: work_dirs/study/<config name>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per run (> 1: under torchrun)')
    parser.add_argument('--pretrain-iters', type=int, default=0,
                        help='first train the backbone with CE this long on other scenes')
    parser.add_argument('--pretrain-data-root', help='the other scenes (same layout)')
    parser.add_argument('--data-root', help="replaces the config's data_root in its loaders")
    parser.add_argument('--iters', type=int,
                        help='iterations per run (validation every quarter)')
    parser.add_argument('--title', default='')
    parser.add_argument('--regime', default='',
                        help='a label for every run of this study (e.g. the label noise of '
                             '--data-root); merged studies give one row per regime')
    parser.add_argument('--train-miou', action='store_true',
                        help='also score each run on its training labels (as written) at '
                             'every validation')


def _add_mode_arguments(parser):
    parser.add_argument('--replot', action='store_true',
                        help='only rewrite study.md/.png of --work-dir from its study.json')
    parser.add_argument('--collect', action='store_true',
                        help='only rebuild study.md/.json/.png of --work-dir from the run '
                        'folders in it (a study interrupted, or run in parts)')
    parser.add_argument('--merge', nargs='+', metavar='STUDY_DIR',
                        help='only write one table and figure in --work-dir from the runs of '
                        'these finished studies (CONFIG is ignored)')
    parser.add_argument('--overwrite-merge', action='store_true',
                        help='with --merge: replace a study already in --work-dir')
    parser.add_argument('--spec', metavar='FILE',
                        help='run a study spec (JSON: datasets, studies, merges; see '
                        'docs/tools.md); resumable')
    parser.add_argument('--only', nargs='+', metavar='STUDY',
                        help='with --spec: run only these studies of the spec')
    parser.add_argument('--with-published', action='store_true',
                        help='with --spec --only: also run the studies that the merges this '
                        'run writes have published (on a work dir seeded from the records '
                        'they have finished: they train nothing and write their study.json '
                        'again, so the merges keep them)')
    parser.add_argument('--export-finished', action='store_true',
                        help="with --spec: copy the finished runs' records of its studies (or "
                        "--only's) to their merges' records folders, finished study or not; "
                        'train nothing (how a study longer than a session keeps its progress)')


def build_parser():
    """The study tool's arguments."""
    parser = tool_parser(
        'Does NGL train? One config under a grid of loss variants x optimizers x learning '
        'rates x seeds; writes study.md, study.json and study.png.')
    _add_grid_arguments(parser)
    _add_run_arguments(parser)
    _add_mode_arguments(parser)
    add_cfg_options(parser, 'run')
    return parser


def _given(argv):
    """The destinations of the arguments on the command line ``argv`` (None:
    ``sys.argv``), defaults or not: parsed again by a parser whose defaults are
    all ``argparse.SUPPRESS``, so that only what was given is set."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _check_modes(parser, args, argv=None):
    """At most one mode, and only the arguments it takes (those a ``--spec`` run
    does not use are refused when given, even as their defaults).

    Args:
        parser (argparse.ArgumentParser): the tool's (``build_parser``).
        args (argparse.Namespace): ``argv`` parsed by it.
        argv (list[str] | None): the command line (None: ``sys.argv``).
    """
    modes = [m for m in MODES if getattr(args, m)]
    if len(modes) > 1:
        parser.error(f'--{modes[0]} and --{modes[1]} do not go together')
    if not args.config and not modes:
        parser.error('CONFIG is required (except with --merge, --collect, --replot, --spec)')
    if (args.collect or args.replot) and not args.work_dir:
        parser.error(f'--{modes[0]} needs --work-dir')
    if args.merge and not args.work_dir:
        parser.error('--merge needs --work-dir for the merged table')
    if modes and modes[0] in ('merge', 'replot', 'collect') and args.regime:
        parser.error(f'--regime labels the runs of a new study; with --{modes[0]} each run '
                     'keeps the regime it was trained under')
    if args.spec:
        given = _given(argv)
        unused = [action.option_strings[0] if action.option_strings else action.dest.upper()
                  for action in parser._actions
                  if action.dest not in SPEC_ARGUMENTS + ('help', ) and action.dest in given]
        if unused:
            parser.error(f'--spec does not use {", ".join(unused)}: the spec file says what '
                         'to train and where (only --only, --with-published, --jobs, '
                         '--gpus-per-run, --threads-per-run and --export-finished go with it)')
        if args.with_published and args.export_finished:
            parser.error('--with-published adds studies to a spec run; --export-finished '
                         'trains nothing (its --only names what to export)')
        if args.with_published and not args.only:
            parser.error('--with-published adds studies to --only; without --only every '
                         'study of the spec runs')
    elif args.only or args.export_finished or args.with_published:
        flag = next(f for f, on in (('only', args.only), ('export-finished', args.export_finished),
                                    ('with-published', args.with_published)) if on)
        parser.error(f'--{flag} goes with --spec')


def report_split_arg(values):
    """``--report-split KEY=VALUE ...`` as a dict (values kept as strings)."""
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition('=')
        if not sep or not key or not value:
            raise ValueError(f'--report-split takes KEY=VALUE, got {item!r}')
        out[key] = value
    return out


def settings_from_args(args, work_dir):
    """The :class:`StudySettings` of a study given on the command line."""
    return StudySettings(
        args.config, args.variants, optimizers=args.optimizers, seeds=args.seeds,
        work_dir=work_dir, gpus=args.gpus, cfg_options=args.cfg_options,
        pretrain_iters=args.pretrain_iters, pretrain_data_root=args.pretrain_data_root,
        title=args.title, data_root=args.data_root, iters=args.iters, regime=args.regime,
        train_miou=args.train_miou, lrs=args.lrs, search_seeds=args.search_seeds,
        jobs=args.jobs, gpus_per_run=args.gpus_per_run, threads_per_run=args.threads_per_run,
        extend_edges=args.extend_edges, double_seeds=args.double_seeds,
        wide_seeds=args.wide_seeds, wide_half_width=args.wide_half_width,
        report_split=report_split_arg(args.report_split))


@contextlib.contextmanager
def _failed_runs_as_one_line(parser):
    """A study whose runs failed ends the tool with one line naming them, their
    logs and how to resume (exit code 1), not with a traceback."""
    try:
        yield
    except RunsFailed as exc:
        parser.exit(1, f'{parser.prog}: {exc}\n')


def main():
    """``python -m ngl_lab.study_cli`` (``tools/study_ngl.py``)."""
    parser = build_parser()
    args = parser.parse_args()
    _check_modes(parser, args, sys.argv[1:])
    work_dir = args.work_dir or default_work_dir('study', args.config)
    with refusals_as_usage_errors(parser), _failed_runs_as_one_line(parser):
        if args.spec and args.export_finished:
            export_finished(args.spec, args.only)
        elif args.spec:
            run_spec(args.spec, jobs=args.jobs, only=args.only, gpus_per_run=args.gpus_per_run,
                     threads_per_run=args.threads_per_run, with_published=args.with_published)
        elif args.replot:
            replot(work_dir)
        elif args.collect:
            collect(work_dir, args.config or '', args.title)
        elif args.merge:
            merge(work_dir, args.merge, args.title, args.overwrite_merge)
        else:
            study(settings_from_args(args, work_dir))


if __name__ == '__main__':
    main()
