import os
import sys

# Tests import `tests.helpers`-style modules by name; keep the tests folder importable.
sys.path.insert(0, os.path.dirname(__file__))
