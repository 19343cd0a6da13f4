import sys

from fondation_cli.main import main

sys.exit(main())
