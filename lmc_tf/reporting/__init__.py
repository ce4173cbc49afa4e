"""Results → tables and figures, as pure functions; the `report` job writes them."""
