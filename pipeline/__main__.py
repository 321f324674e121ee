"""`python -m pipeline [--query SQL | --input FILES] [--output DIR] ...`"""

import sys

from pipeline.utils import fork_server

fork_server.start_early(sys.argv[1:], "pipeline.run")  # the local workers' imports, while this process imports and parses

from pipeline.run import main  # noqa: E402  (after the fork server's start, on purpose)

sys.exit(main())
