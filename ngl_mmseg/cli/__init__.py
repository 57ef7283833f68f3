"""mmseg's train and test tools with ngl-mmseg's additions, as modules.

``python -m ngl_mmseg.cli.train CONFIG`` and ``python -m ngl_mmseg.cli.test
CONFIG CHECKPOINT`` run them from an installed package; ``tools/train.py`` and
``tools/test.py`` (also shipped as ``ngl_mmseg/.mim/tools``) are thin wrappers.
Not imported by ``import ngl_mmseg``.
"""
import os


def add_launch_arguments(parser):
    """Add the arguments mmseg's train and test tools share to ``parser``:
    ``--cfg-options``, ``--launcher`` and ``--local-rank`` (alias ``--local_rank``),
    with mmseg's help texts.

    Args:
        parser (argparse.ArgumentParser): The tool's parser, edited in place.
    """
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch of PyTorch >= 2.0 passes --local-rank, earlier
    # versions --local_rank: both are accepted.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser):
    """``parser.parse_args()``, with ``LOCAL_RANK`` set from ``--local-rank`` where the
    launcher did not set it (mmengine reads the environment variable)."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args
