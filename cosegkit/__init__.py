"""cosegkit: a reproducible companion to four papers on deep metric learning for (co-)segmentation."""

__version__ = "0.1.0"
