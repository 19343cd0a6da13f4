from fondation_runner.main import main

raise SystemExit(main())
