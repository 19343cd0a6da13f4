"""Contracts shared by the operator, the runner and the tests.

Everything that crosses a process boundary (the AnalysisJob resource, the
course a runner produces, the events it reports) is defined here once, as
pydantic models, and imported by every side.
"""
