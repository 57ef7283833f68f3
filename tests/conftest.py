"""Fixtures shared by the test modules (helpers they import are in ``helpers.py``)."""
import pytest
from helpers import make_dataset


@pytest.fixture
def message_hub(request):
    """A fresh mmengine MessageHub, current for this test: NGLLoss's warm-ups read the
    iteration from it (``hub.update_info('iter', ...)`` and ``'max_iters'``, as a Runner sets
    them) and NGLMonitorHook logs to it. Afterwards the hub current before is current again,
    so no iteration leaks into the next test."""
    from mmengine.logging import MessageHub
    name = f'test:{request.node.nodeid}'
    hub = MessageHub.get_instance(name)
    assert MessageHub.get_current_instance() is hub
    yield hub
    MessageHub._instance_dict.pop(name, None)


@pytest.fixture(scope='session')
def workspace(tmp_path_factory):
    """A scratch folder holding ``data/synthetic/{voc,coco-stuff}``, where the quickstart
    configs look: the end-to-end tests run the tools from it."""
    root = tmp_path_factory.mktemp('workspace')
    make_dataset('voc', root / 'data' / 'synthetic' / 'voc')
    make_dataset('coco-stuff', root / 'data' / 'synthetic' / 'coco-stuff')
    return root
