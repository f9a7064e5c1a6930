"""lbctl: the package manager for LangBot plugins."""

__version__ = "0.1.0"
