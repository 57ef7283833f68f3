"""Fake study run folders (run.json and logged scalars) for the report tests."""
import json
import os


def fake_study_run(root, variant, seed, finals, regime='r', iters=None, name=None, **record):
    """A finished run folder as the study writes it: run.json, and mmengine's
    scalars with ``finals`` at evenly spaced validations (and a train mIoU)."""
    iters = iters or 2 * len(finals)
    run_dir = root / (name or f'{variant}_adamw_seed{seed}')
    stamp = run_dir / '20261128_000000'
    os.makedirs(stamp / 'vis_data')
    (run_dir / 'config.py').write_text('')
    base = dict(regime=regime, variant=variant, losses=[{'type': 'X'}], optimizer='adamw',
                lr=None, seed=seed, config='c.py', data_root='d', iters=iters, pretrain=None,
                train_miou=True, report_split=None, cfg_options=None, finished=True,
                seconds=100.0)
    base.update(record)
    (run_dir / 'run.json').write_text(json.dumps(base))
    step = iters // len(finals)
    rows = [{'step': step * (k + 1), 'mIoU': v} for k, v in enumerate(finals)]
    rows += [{'step': iters, 'train_mIoU': 70.0}]
    (stamp / 'vis_data' / 'scalars.json').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return run_dir
