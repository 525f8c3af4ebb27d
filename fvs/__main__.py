import sys

from fvs.cli import main

if __name__ == "__main__":  # not in a spawned worker process (fvs.store.seeding)
    sys.exit(main())
