"""Run a Tandem training job on any Ray cluster:

ray job submit --working-dir . -- python jobs/train.py jobs/specs/digits-mlp.yaml
"""

import sys

from tandem.train.main import main

if __name__ == "__main__":
    sys.exit(main())
