from detic_cli.config.loader import CfgNode, load_config

__all__ = ["CfgNode", "load_config"]
