"""Loss and accuracy of a model on a whole split, through `strategy.run`; or of several
models at once, each batch read once and every model run on it in one program."""

import numpy as np
import tensorflow as tf

from lmc_tf import distribute
from lmc_tf.models import registry


class SplitEvaluator:
  """Evaluates `model` on one split; build once, call as often as the weights change.

  `models` are further models of the same architecture that `evaluate_all` measures beside
  `model`, on the same batches in one compiled loop (the evaluator's alphas per program).
  `outputs(images, n)`, if given, is another way to compute the logits of the first n of
  them on a batch (a list of n), which `evaluate_all(n, shared=True)` uses.
  """

  def __init__(self, strategy, model, data, split="test", batch_size=1000, max_examples=None,
               models=(), outputs=None):
    num_examples = data.num_examples(split)
    if max_examples is not None:
      num_examples = min(num_examples, max_examples)
    replicas = strategy.num_replicas_in_sync
    batch_size = min(batch_size, -(-num_examples // replicas) * replicas)
    batch_size = -(-batch_size // replicas) * replicas  # a multiple of the replica count
    self.num_examples = num_examples
    self._strategy = strategy
    self._model = model
    self._models = [model, *models]
    self._outputs = outputs
    self._loops_all = {}
    self._num_batches = -(-num_examples // batch_size)
    self._dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data.eval_batches(split, batch_size, max_examples, ctx))
    self._loop = tf.function(self._eval_loop)
    self._per_example_step = tf.function(self._gathered_step)

  def _logits(self, images, model=None):
    # An auxiliary classifier (Inception-v3) is trained but not evaluated.
    logits, _ = registry.split_outputs((model or self._model)(images, training=False))
    return tf.cast(logits, tf.float32)

  def _eval_step(self, images, labels, weights, model=None):
    return self._sums(self._logits(images, model), labels, weights)

  def _sums(self, logits, labels, weights):
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=labels.dtype), labels),
                      tf.float32)
    return tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights)

  def _eval_loop(self, iterator):
    total_loss = tf.constant(0.0)
    total_correct = tf.constant(0.0)
    for _ in tf.range(self._num_batches):
      loss, correct = self._strategy.run(self._eval_step, args=next(iterator))
      total_loss += self._strategy.reduce("SUM", loss, axis=None)
      total_correct += self._strategy.reduce("SUM", correct, axis=None)
    return total_loss, total_correct

  def _loop_all(self, n, shared):
    """The compiled loop over the split of the first `n` models: [n, 2] sums."""
    if (n, shared) not in self._loops_all:
      models = self._models[:n]

      def step(images, labels, weights):
        if shared:
          return tf.stack([tf.stack(self._sums(tf.cast(logits, tf.float32), labels, weights))
                           for logits in self._outputs(images, n)])
        return tf.stack([tf.stack(self._eval_step(images, labels, weights, m))
                         for m in models])

      def loop(iterator):
        totals = tf.zeros([n, 2])
        for _ in tf.range(self._num_batches):
          totals += self._strategy.reduce(
              "SUM", self._strategy.run(step, args=next(iterator)), axis=None)
        return totals
      self._loops_all[n, shared] = tf.function(loop)
    return self._loops_all[n, shared]

  def evaluate_all(self, n=None, shared=False):
    """The results of __call__ for each of the first `n` models (all by default), from one
    pass over the split; their logits from `outputs` if `shared`."""
    n = len(self._models) if n is None else n
    if shared and self._outputs is None:
      raise ValueError("evaluate_all(shared=True) needs the evaluator's `outputs`")
    totals = self._loop_all(n, shared)(iter(self._dataset)).numpy()
    return [self._result(loss, correct) for loss, correct in totals]

  def _result(self, loss, correct):
    accuracy = 100.0 * float(correct) / self.num_examples
    return {"loss": float(loss) / self.num_examples, "accuracy": accuracy,
            "error": 100.0 - accuracy, "examples": self.num_examples}

  def _per_example(self, images, labels, weights):
    logits = self._logits(images)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return losses, tf.argmax(logits, -1, output_type=labels.dtype), weights

  def _gathered_step(self, batch):
    per_replica = self._strategy.run(self._per_example, args=batch)
    # Replica r holds slice r of the global batch, so replica order is example order. On one
    # host the local results are all replicas and need no collective op; across hosts,
    # gather collects them from every worker.
    if distribute.num_workers(self._strategy) == 1:
      return [tf.concat(self._strategy.experimental_local_results(t), axis=0)
              for t in per_replica]
    return [self._strategy.gather(t, axis=0) for t in per_replica]

  def per_example(self):
    """Per-example losses and predicted labels over the split, in the split's order."""
    losses, predictions = [], []
    for batch in self._dataset:
      loss, prediction, weight = (t.numpy() for t in self._per_example_step(batch))
      losses.append(loss[weight > 0])
      predictions.append(prediction[weight > 0])
    return np.concatenate(losses), np.concatenate(predictions)

  def __call__(self):
    """Returns {'loss': mean loss, 'accuracy': percent, 'error': percent, 'examples': n}."""
    loss, correct = self._loop(iter(self._dataset))
    return self._result(loss, correct)
