import numpy as np
import pytest

from lmc_tf.training import schedules


@pytest.mark.parametrize("value,steps", [
    (7, 7), ("500it", 500), ("2ep", 2000), ("2ep100it", 2100), (" 3ep ", 3000), ("0it", 0)])
def test_parse_steps(value, steps):
  assert schedules.parse_steps(value, steps_per_epoch=1000) == steps


@pytest.mark.parametrize("value", ["", "ep", "12", "2 epochs", "-3it", -1, True, "1.5ep"])
def test_parse_steps_rejects_garbage(value):
  with pytest.raises(ValueError):
    schedules.parse_steps(value, steps_per_epoch=10)


def _lr(schedule, steps):
  return np.array([float(schedule(s)) for s in steps])


def test_constant():
  np.testing.assert_allclose(_lr(schedules.PaperSchedule(1.2e-3), [0, 5, 10**6]), 1.2e-3)


def test_step_drops_at_the_listed_steps():
  s = schedules.PaperSchedule(0.1, drop_steps=(32000, 48000), drop_factor=0.1)
  np.testing.assert_allclose(_lr(s, [0, 31999, 32000, 47999, 48000, 62999]),
                             [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_linear_warmup_then_drops():
  s = schedules.PaperSchedule(0.03, warmup_steps=30000, drop_steps=(32000,))
  np.testing.assert_allclose(_lr(s, [0, 15000, 30000, 31000, 32000]),
                             [0.0, 0.015, 0.03, 0.03, 0.003], rtol=1e-6)


def test_linear_decay():
  s = schedules.PaperSchedule(0.03, total_steps=1000, decay_to=0.005)
  np.testing.assert_allclose(_lr(s, [0, 500, 1000, 2000]), [0.03, 0.0175, 0.005, 0.005],
                             rtol=1e-6)


def test_exponential_decay():
  s = schedules.PaperSchedule(0.66, total_steps=1000, decay_to=6.6e-5, decay="exponential")
  np.testing.assert_allclose(_lr(s, [0, 250, 500, 999, 1000, 2000]),
                             [0.66, 0.066, 6.6e-3, 0.66 * 1e-4 ** 0.999, 6.6e-5, 6.6e-5],
                             rtol=1e-5)
  # Continuous, not a staircase: every step lowers the rate.
  assert np.all(np.diff(_lr(s, range(0, 20))) < 0)


def test_make_schedule_decays_linearly_unless_told_otherwise():
  linear = schedules.make_schedule(0.03, steps_per_epoch=10, total_steps=100, decay_to=0.005)
  assert linear.decay == "linear" and float(linear(50)) == pytest.approx(0.0175)
  exponential = schedules.make_schedule(0.66, 10, 100, decay_to=6.6e-5, decay="exponential")
  assert float(exponential(50)) == pytest.approx(6.6e-3, rel=1e-5)
  with pytest.raises(ValueError, match="lr_schedule.decay="):
    schedules.make_schedule(0.1, 10, 100, decay_to=0.01, decay="cosine")
  with pytest.raises(ValueError, match="lr_schedule.decay_to"):  # never reaches 0
    schedules.make_schedule(0.1, 10, 100, decay_to=0.0, decay="exponential")
  schedules.make_schedule(0.1, 10, 100, decay_to=0.0)  # a linear decay can


def test_offset_restarts_the_schedule():
  s = schedules.PaperSchedule(0.1, warmup_steps=100, offset=500)
  np.testing.assert_allclose(_lr(s, [500, 550, 600]), [0.0, 0.05, 0.1], rtol=1e-6)


def test_make_schedule_reads_epochs():
  s = schedules.make_schedule(0.1, steps_per_epoch=100, total_steps=1000, drops=("2ep",),
                              warmup="50it")
  assert s.warmup_steps == 50 and s.drop_steps == (200,)
