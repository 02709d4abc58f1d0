"""Using trained checkpoints: loading them and translating or scoring text with them."""
