"""Linear interpolation between trained copies, the error barrier, and distances."""
