import sys

from fondation_operator.main import main

sys.exit(main())
