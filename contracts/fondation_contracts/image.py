"""What the project's images, the chart and the runner Job agree on.

The images (images/build.py, the Dockerfiles) are built with this user, home
and working directory; the chart and the operator's Job builder run them as
the same numeric user (restricted Pod Security needs a numeric, non-root id)
and mount their emptyDirs at the same paths. Names are the chart's defaults,
tagged with its appVersion.
"""

from __future__ import annotations

UID = 65532
HOME = "/home/runner"
WORKSPACE = "/workspace"
# The pause image runs as the user Kubernetes' own pause image uses.
PAUSE_UID = 65535

RUNNER_REPOSITORY = "fondation-runner"
OPERATOR_REPOSITORY = "fondation-operator"
PAUSE_REPOSITORY = "fondation-pause"
