"""The step loop, its optimizers and learning-rate schedules."""
