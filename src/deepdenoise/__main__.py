import sys

from deepdenoise.cli import main

sys.exit(main())
