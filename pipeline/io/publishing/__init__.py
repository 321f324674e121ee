"""Publishing: the launch's claim on --output, the staged outputs made visible at once (compare-and-swap records), the published results read back."""
