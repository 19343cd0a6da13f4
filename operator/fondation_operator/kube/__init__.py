"""A small asynchronous Kubernetes API client.

kopf brings aiohttp and talks to the API itself; the operator needs only a
handful of verbs on a handful of resources, so a thin client over the same
aiohttp keeps one HTTP stack in the process and avoids the ~30 MB a full
generated client costs (kopf imports every client library it finds).
"""
