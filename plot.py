"""Draw learning curves over seeds: ``python plot.py results/sacred --metric test_return_mean --style median_iqr``."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from concord.plot import main  # noqa: E402

if __name__ == "__main__":
    print(main())
