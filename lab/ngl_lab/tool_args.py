"""What the lab's command lines share (``compare``, ``study_cli``): the parser and
its ``--cfg-options``, the default work dir, argument, folder and name checks, a
prefixed printer, and refusals as one usage line instead of a traceback."""
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


def check_folder(path, what):
    """Refuse a ``path`` that is a file, or lies under one (``os.makedirs`` would fail
    halfway): a ValueError naming ``what`` and the file, before anything is made.

    Args:
        path (str): a folder that exists or is to be made.
        what (str): what the folder is, as the user named it (``work_dir``, ``records``).
    """
    full = osp.abspath(path)
    here = full
    while True:
        if osp.lexists(here) and not osp.isdir(here):
            where = '' if here == full else f': {here}'
            raise ValueError(f'{what} {path!r}{where} is a file, not a folder: give a folder '
                             '(or a path that does not exist yet)')
        parent = osp.dirname(here)
        if parent == here:
            return
        here = parent


def check_plain_name(name, what):
    """Refuse a name that is not one plain file name (it names a folder inside a work
    dir: no ``/``, not ``.``, ``..`` or empty, not absolute).

    Args:
        name (str): the name.
        what (str): what it names (``study``, ``merge``, ``dataset``).
    """
    if not isinstance(name, str) or name in ('', '.', '..') or '/' in name or \
            '\\' in name or '\0' in name or osp.isabs(name):
        raise ValueError(f'{what} name {name!r} is not a plain name: it names a folder inside '
                         'the work dir, so it may not be empty, ".", ".." or hold "/"')
    return name


def printer(tool):
    """A function that prints one line as ``[tool] message``, flushed at once
    (the tools' lines interleave with the progress of runs in flight)."""

    def say(msg):
        print(f'[{tool}] {msg}', flush=True)

    return say
