"""joint: plain late fusion, L = CE(logits(all), y), no modulation - the model that shows the imbalance."""
from .base import Method


class Joint(Method):
    name = "joint"
