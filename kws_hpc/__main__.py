import sys

from kws_hpc.cli import main

sys.exit(main())
