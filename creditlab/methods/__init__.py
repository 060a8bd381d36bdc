"""One package per paper. Each has an ``experiments.py`` that registers its experiments."""
