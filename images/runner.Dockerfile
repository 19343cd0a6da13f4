# For Docker or buildah users: the runner image: Python 3.11, git, the project and its `claude` extra (with the
# Claude Code CLI that the claude-agent-sdk wheel bundles).
#   docker build -f images/runner.Dockerfile -t fondation-runner:0.1.0 .
# Without a container engine, `python -m images.build` makes the same image as
# an archive from a Debian root filesystem. Both ways install the project with
# images/install.sh and trim Debian with images/rootfs-hook.sh, so the
# project's files are the same (tests/images/test_build.py compares them);
# the Debian base differs (debian:bookworm-slim here, mmdebstrap minbase there).
FROM python:3.11-slim-bookworm AS install
COPY pyproject.toml README.md /src/
COPY contracts /src/contracts
COPY operator /src/operator
COPY runner /src/runner
COPY cli /src/cli
COPY prompts /src/prompts
COPY images/install.sh /src/images/install.sh
COPY images/requirements /src/images/requirements
RUN sh /src/images/install.sh runner /out

FROM debian:bookworm-slim
COPY images/rootfs-hook.sh /tmp/rootfs-hook.sh
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python-is-python3 ca-certificates git \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && sh /tmp/rootfs-hook.sh / 65532 \
 && rm /tmp/rootfs-hook.sh
COPY --from=install /out/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/home/runner
USER 65532:65532
WORKDIR /workspace
CMD ["python", "-m", "fondation_runner"]
