import sys

from journey_conversions.cli import main

sys.exit(main())
