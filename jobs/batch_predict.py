"""Score Parquet with a registered model on any Ray cluster:

ray job submit --working-dir . -- python jobs/batch_predict.py digits-mlp:production \
    data/digits/validation.parquet predictions/digits
"""

import sys

from tandem.batch.main import main

if __name__ == "__main__":
    sys.exit(main())
