"""VGG-16's standard smoke configs run end to end (the ResNet-20 ones, and the check of the
low-LR and warmup variants: test_cifar_configs.py)."""

import os

import pytest

from tests.test_cifar_configs import SMOKE
from tests.test_cifar_configs import check_smoke_config
from tests.test_cifar_configs import runs_end_to_end

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in SMOKE if "vgg16" in os.path.basename(p)
                                  and runs_end_to_end(p)],
                         ids=os.path.basename)
def test_smoke_config_runs_end_to_end(path, tmp_path, cifar10_sample):
  check_smoke_config(path, tmp_path, cifar10_sample)
