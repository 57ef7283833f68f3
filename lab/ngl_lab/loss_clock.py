"""The losses inside a training step, by the clock (``tools/profile_run.py --loss-time``):
what share of the step the loss takes, where ``torch.profiler`` would slow the ops it
watches."""
import time


class LossClock:
    """Times loss modules' forward and backward inside a training step, without a profiler:
    each wrapped module's forward by the clock around it, its backward from the moment
    autograd reaches the loss's output node to the moment the gradient of the loss's first
    input (a head's resized logits) is complete. Counts only while ``active``.

    Why the two marks bracket the loss's backward and nothing else: autograd on the CPU runs
    one node at a time, the ready node created last first; a loss's nodes were created
    together, after its head's forward and before the next head's, so once autograd has
    reached the loss's output it runs the loss's nodes before any node created earlier (the
    head, the upsampling before the loss), and the input's gradient hook fires as soon as
    they are done. Losses on one input (a head's list of losses) share that hook: autograd
    reaches the last one's output first and the input's gradient is complete after all of
    them, so their backward is timed as one interval, from the first of their marks. The
    marks cost two Python calls a loss."""

    def __init__(self):
        self.active = False
        self.forward_s = self.backward_s = 0.0
        self.calls = 0  # forwards timed
        self.awaited = self.backward_done = 0  # losses whose backward was awaited, timed
        self.names = []
        self._waiting = {}  # id(input) -> its losses' backward: start, losses

    def wrap(self, loss):
        forward = loss.forward

        def timed_forward(pred, *args, **kwargs):
            if not self.active:
                return forward(pred, *args, **kwargs)
            t0 = time.perf_counter()
            out = forward(pred, *args, **kwargs)
            self.forward_s += time.perf_counter() - t0
            self.calls += 1
            if pred.requires_grad and out.grad_fn is not None:
                self._await_backward(pred, out)
            return out

        loss.forward = timed_forward
        self.names.append(type(loss).__name__)

    def _await_backward(self, pred, out):
        key = id(pred)
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = dict(start=None, losses=0)

            def backward_end(grad):
                self._waiting.pop(key, None)
                if waiting['start'] is None:
                    raise RuntimeError("--loss-time: a loss input's gradient was complete "
                                       "before autograd reached the loss")
                self.backward_s += time.perf_counter() - waiting['start']
                self.backward_done += waiting['losses']

            pred.register_hook(backward_end)

        def backward_start(grad_outputs):
            if waiting['start'] is None:
                waiting['start'] = time.perf_counter()

        out.grad_fn.register_prehook(backward_start)
        waiting['losses'] += 1
        self.awaited += 1

    def end_step(self):
        """A training step is over: forget the losses still waiting for a backward (they
        had none in the step); they stay counted as awaited, so ``check_paired`` says so."""
        self._waiting.clear()

    def check_paired(self):
        if self.backward_done != self.awaited:
            raise RuntimeError(f'--loss-time: {self.awaited} losses had a backward to time '
                               f'but {self.backward_done} were timed: the marks did not pair')


def loss_time_hook(last_iters, found):
    """A hook that times the heads' losses (every ``loss_decode`` of the decode and
    auxiliary heads, by a ``LossClock``) over the iterations ``last_iters`` watches
    (``run_profile.last_iters_hook``: the last N) into ``found``, beside the step's time
    there."""
    import torch
    from mmengine.model import is_model_wrapper

    def modules(x):
        return list(x) if isinstance(x, torch.nn.ModuleList) else [] if x is None else [x]

    class LossTime(last_iters):

        def __init__(self):
            self.losses = LossClock()

        def before_train(self, runner):
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            if any(p.device.type != 'cpu' for p in model.parameters()):
                raise RuntimeError('--loss-time times the losses by the clock on the CPU: on '
                                   'a GPU it would time kernel launches, not kernels')
            for name in ('decode_head', 'auxiliary_head'):
                for head in modules(getattr(model, name, None)):
                    for loss in modules(getattr(head, 'loss_decode', None)):
                        self.losses.wrap(loss)
            if not self.losses.names:
                raise RuntimeError('--loss-time: the model has no head with a loss_decode')

        def start(self):
            self.losses.active = True

        def each_iter(self):
            self.losses.end_step()

        def finish(self, iters, step_seconds):
            losses = self.losses
            losses.check_paired()
            found.update(
                iters=iters, losses=losses.names,
                calls_per_iter=losses.calls / iters,
                step_ms_per_iter=1e3 * step_seconds / iters,
                forward_ms_per_iter=1e3 * losses.forward_s / iters,
                backward_ms_per_iter=1e3 * losses.backward_s / iters,
                loss_ms_per_iter=1e3 * (losses.forward_s + losses.backward_s) / iters)

    return LossTime()
