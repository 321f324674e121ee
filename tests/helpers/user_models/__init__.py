"""A user's model package, as an operator would install it in the image (tests only)."""
