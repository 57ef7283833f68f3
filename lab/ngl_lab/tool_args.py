"""What the lab's command lines share (``compare``, ``study_cli``): the parser and
its ``--cfg-options``, the default work dir, argument checks, a prefixed
printer, and refusals as one usage line instead of a traceback."""
import argparse
import contextlib
import os.path as osp
import warnings


def tool_parser(description):
    """An argument parser for a lab tool.

    mmengine imports pkg_resources, whose deprecation warning (setuptools >= 81)
    would open every tool's output: it is silenced before anything imports mmengine.

    Args:
        description (str): the tool's ``--help`` description.
    """
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    return argparse.ArgumentParser(description=description)


def add_cfg_options(parser, what):
    """``--cfg-options k=v ...`` (mmengine's ``DictAction``, as in tools/train.py).

    Args:
        parser (argparse.ArgumentParser): the tool's parser.
        what (str): what the options apply to ("variant", "run"), for ``--help``.
    """
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help=f'override settings of every {what}, as in tools/train.py')


def default_work_dir(tool, config):
    """``work_dirs/<tool>/<config file name without .py>``."""
    return osp.join('work_dirs', tool, osp.splitext(osp.basename(config or ''))[0])


@contextlib.contextmanager
def refusals_as_usage_errors(parser):
    """A ValueError or FileExistsError raised inside (an argument or a folder the
    tool refuses) ends the tool with one usage line naming it (exit code 2)."""
    try:
        yield
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))


def check_count(name, value, minimum, maximum=None):
    """An int in [``minimum``, ``maximum``], else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        within = f'>= {minimum}' if maximum is None else f'in [{minimum}, {maximum}]'
        raise ValueError(f'{name} must be an integer {within}, got {value!r}')
    return value


def printer(tool):
    """A function that prints one line as ``[tool] message``, flushed at once
    (the tools' lines interleave with the progress of runs in flight)."""

    def say(msg):
        print(f'[{tool}] {msg}', flush=True)

    return say
