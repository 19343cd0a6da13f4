"""Local stand-ins for the services the project talks to, so tests and benchmarks
run the real code paths (the real Claude Code CLI included) without credentials
and without leaving the loopback interface."""
