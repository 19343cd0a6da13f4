"""The Fondation operator: reconciles AnalysisJobs into Kubernetes Jobs."""
