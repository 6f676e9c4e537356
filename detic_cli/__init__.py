"""detic: Detic open-vocabulary detection with official checkpoints and configs."""

__version__ = "0.1.0"
