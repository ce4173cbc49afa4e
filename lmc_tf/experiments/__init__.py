"""The jobs: the only code that decides what is written where."""
