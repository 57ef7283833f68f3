"""The study's statistics: paired differences over seeds, and convergence.

Two variants trained with the same seeds are compared seed by seed: with
``d_i`` their per-seed differences (n seeds), the 95% interval is the paired
t interval ``mean(d) +- t(0.975, n - 1) * sd(d) / sqrt(n)`` (``sd``: the sample
standard deviation, n - 1 in the denominator). A difference whose interval
holds 0 is a tie within noise; the docs call it a win or a loss only where the
interval excludes 0.
"""
import math
import statistics

# t(0.975, df): the two-sided 95% quantiles of Student's t, df = 1..30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df):
    """Student's t quantile t(0.975, df) (df >= 1; beyond 30, the normal's 1.96
    plus its first correction term, within 0.001 of the exact value)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f'degrees of freedom must be an integer >= 1, got {df!r}')
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


def mean_interval(values):
    """(mean, half width of its 95% t interval); half width nan below 2 values."""
    values = [float(v) for v in values]
    if not values:
        return float('nan'), float('nan')
    if any(math.isnan(v) for v in values):
        raise ValueError(f'a NaN among the values {values}: a run that failed or logged '
                         'no score cannot enter a mean')
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float('nan')
    return mean, t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def paired_difference(other, reference):
    """``other`` against ``reference``, both {seed: score}, over their common seeds.

    Returns:
        dict: ``seeds``, ``diffs`` (other - reference per seed), ``mean``,
        ``low``/``high`` (the 95% paired t interval; nan with fewer than 2
        seeds), ``ahead`` (seeds where other > reference), ``n`` and
        ``verdict``: 'win', 'loss' or 'tie' ('tie' whenever the interval holds
        0 or cannot be computed).
    """
    seeds = sorted(set(other) & set(reference))
    diffs = [float(other[s]) - float(reference[s]) for s in seeds]
    mean, half = mean_interval(diffs)
    low, high = mean - half, mean + half
    if len(diffs) >= 2 and low > 0:
        verdict = 'win'
    elif len(diffs) >= 2 and high < 0:
        verdict = 'loss'
    else:
        verdict = 'tie'
    return dict(seeds=seeds, diffs=diffs, mean=mean, low=low, high=high, n=len(diffs),
                ahead=sum(d > 0 for d in diffs), verdict=verdict)


def format_difference(diff):
    """'+1.23 [-0.40, +2.86], ahead 3/5, tie' (or 'n/a' without common seeds)."""
    if not diff['n']:
        return 'n/a'
    interval = ('' if math.isnan(diff['low']) else
                f" [{diff['low']:+.2f}, {diff['high']:+.2f}]")
    return f"{diff['mean']:+.2f}{interval}, ahead {diff['ahead']}/{diff['n']}, {diff['verdict']}"


def last_quarter_gain(curve):
    """Gain of a (step, score) curve over its last quarter of iterations: the
    final score minus the score at the last validation at or before 3/4 of the
    final step (the first validation if none is that early)."""
    if len(curve) < 2:
        return float('nan')
    final_step, final = curve[-1]
    earlier = [v for s, v in curve[:-1] if s <= 0.75 * final_step] or [curve[0][1]]
    return final - earlier[-1]


def is_converged(curve, tol=1.0):
    """A run is converged when its last quarter gains less than ``tol`` mIoU."""
    gain = last_quarter_gain(curve)
    return not math.isnan(gain) and gain < tol
