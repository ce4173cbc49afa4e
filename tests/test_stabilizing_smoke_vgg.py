"""The vgg19 smoke configs of the Stabilizing paper run end to end (train, evaluate, report)
on the shared CIFAR-10 sample, but for the low-LR and warmup variants of the standard one
(test_cifar_configs.py checks those). Its own module, so that xdist's loadscope spreads the networks
over the workers."""

import glob
import os

import pytest

from tests.test_cifar_configs import runs_end_to_end
from tests.test_stabilizing import SMOKES
from tests.test_stabilizing import check_cifar_smoke

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")
# The low-LR and warmup variants of the standard one: test_cifar_configs.py checks them.
CONFIGS = [p for p in sorted(glob.glob(os.path.join(SMOKES, "vgg19_*_smoke.gin")))
           if runs_end_to_end(p)]


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_smoke_config_runs_end_to_end(path, tmp_path, cifar10_sample):
  check_cifar_smoke(path, tmp_path, cifar10_sample)
