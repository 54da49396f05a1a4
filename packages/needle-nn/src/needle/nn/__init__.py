"""Neural-network layers (filled in by the needle-nn issue)."""
