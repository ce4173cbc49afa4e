import numpy as np
import pytest
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf.data import base
from lmc_tf.models import registry
from lmc_tf.training import evaluate


def _evaluator(bind, strategy_name, num_examples):
  """A LeNet and its test-split evaluator (batch 64, so the last batch is padded)."""
  bind(f"strategy.name = '{strategy_name}'", "strategy.num_cpu_devices = 2",
       f"dataset.max_test_examples = {num_examples}")
  strategy = distribute.get_strategy()
  data = base.get_dataset()
  with strategy.scope():
    model = registry.build_model(init_seed=4, input_shape=data.image_shape,
                                 num_classes=data.num_classes)
  return model, data, evaluate.SplitEvaluator(strategy, model, data, "test", batch_size=64)


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_split_evaluator_is_exact_on_a_padded_split(bind, strategy_name):
  model, data, evaluator = _evaluator(bind, strategy_name, 301)
  result = evaluator()

  x = (data.x_test.astype(np.float32) / 255.0 - data.mean) / data.std
  logits = model(tf.constant(x), training=False).numpy().astype(np.float64)
  log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
                                                                                keepdims=True))
  log_probs -= logits.max(1, keepdims=True)
  want_loss = -log_probs[np.arange(len(x)), data.y_test].mean()
  want_acc = 100.0 * (logits.argmax(1) == data.y_test).mean()
  assert result["examples"] == 301
  assert result["accuracy"] == pytest.approx(want_acc, abs=1e-9)
  assert result["error"] == pytest.approx(100.0 - want_acc, abs=1e-9)
  assert result["loss"] == pytest.approx(want_loss, rel=1e-5)


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_per_example_outputs_follow_the_split_order(bind, strategy_name):
  model, data, evaluator = _evaluator(bind, strategy_name, 130)
  losses, predictions = evaluator.per_example()
  x = (data.x_test.astype(np.float32) / 255.0 - data.mean) / data.std
  logits = model(tf.constant(x), training=False).numpy()
  np.testing.assert_array_equal(predictions, logits.argmax(1))
  assert losses.shape == (130,)
  summary = evaluator()
  assert losses.mean() == pytest.approx(summary["loss"], rel=1e-5)
