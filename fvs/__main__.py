import sys

from fvs.cli import main

sys.exit(main())
