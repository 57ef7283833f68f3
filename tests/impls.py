"""Which NGL implementations the tests run.

The Triton kernels run on CPU only in Triton's interpreter, which must be on
before they are defined: ``test_ops.test_triton_kernels_in_interpreter_mode``
re-runs the ``triton`` cases in a subprocess with TRITON_INTERPRET=1.
"""
import os

TRITON_INTERPRET = os.environ.get('TRITON_INTERPRET') == '1'
FUSED_IMPLS = ['torch', 'compile'] + (['triton'] if TRITON_INTERPRET else [])
ALL_IMPLS = FUSED_IMPLS + ['literal']
