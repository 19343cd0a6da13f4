"""The `fondation` command: analyse a repository locally, read a course."""
