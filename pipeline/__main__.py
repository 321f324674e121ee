"""`python -m pipeline [--query SQL | --input FILES] [--output DIR] ...`"""

import sys

from pipeline.run import main

sys.exit(main())
