import sys

from repro_cli.main import main

sys.exit(main())
