"""The Convex bridge: Fondation's Convex job queue served by the operator.

On when `CONVEX_URL` is set; see bridge.py for how it works and settings.py
for its configuration.
"""

from fondation_operator.convexbridge.bridge import ConvexBridge
from fondation_operator.convexbridge.settings import ConvexConfigurationError, ConvexSettings

__all__ = ["ConvexBridge", "ConvexConfigurationError", "ConvexSettings"]
