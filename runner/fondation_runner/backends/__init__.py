"""Backends answer one step's prompt: `claude` through claude-agent-sdk, `offline`
deterministically from the code's own structure."""
