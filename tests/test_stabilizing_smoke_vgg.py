"""Every vgg19 smoke config of the Stabilizing paper runs end to end (train, evaluate, report)
on the shared CIFAR-10 sample. Its own module, so that xdist's loadscope spreads the networks
over the workers."""

import glob
import os

import pytest

from tests.test_stabilizing import SMOKES
from tests.test_stabilizing import check_cifar_smoke

pytestmark = pytest.mark.usefixtures("no_graph_optimizer")


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(SMOKES, "vgg19_*_smoke.gin"))),
                         ids=os.path.basename)
def test_smoke_config_runs_end_to_end(path, tmp_path, cifar10_sample):
  check_cifar_smoke(path, tmp_path, cifar10_sample)
