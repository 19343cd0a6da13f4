"""The runner: clones a repository, runs the six-step analysis and reports
the resulting course. Runs as the AnalysisJob's pod, or locally through
`fondation analyze`."""
