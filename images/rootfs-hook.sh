#!/bin/sh
# mmdebstrap customize hook (run by images/build.py, as root, outside the
# chroot): trims a Debian minbase root filesystem down to what a container of
# this project runs, and adds its non-root user.
#
# Usage: rootfs-hook.sh ROOTFS UID
#
# Removed, because no container of this project runs them and every byte is
# pulled by every node: the package manager (apt; dpkg stays, so its status
# file still lists every package for scanners), perl (git clones, fetches and
# checks out without it; only git-svn, send-email and the like need it), the
# gconv modules (glibc converts UTF-8 and Latin-1 on its own), byte-code
# caches (their bytes vary from build to build), logs, setuid/setgid bits.
set -eu
root=$1
uid=$2

chroot "$root" dpkg --purge --force-depends --force-remove-essential \
  apt libapt-pkg6.0 gpgv debian-archive-keyring \
  perl perl-modules-5.36 libperl5.36 liberror-perl 2>/dev/null || true
# Last, since other packages' removal scripts may still call perl.
chroot "$root" dpkg --purge --force-depends --force-remove-essential perl-base

rm -rf "$root"/usr/lib/x86_64-linux-gnu/gconv \
  "$root"/usr/lib/python3.11/pydoc_data "$root"/usr/lib/python3.11/test \
  "$root"/usr/share/gitweb "$root"/usr/bin/scalar "$root"/usr/bin/git-shell \
  "$root"/usr/lib/git-core/git-shell "$root"/usr/share/bash-completion \
  "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
  "$root"/var/cache/ldconfig/aux-cache
# (mmdebstrap removes its own apt files after this hook; images/build.py
# leaves out what remains of apt's directories and the logs.)
find "$root" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
find "$root" -xdev -type f -perm /6000 -exec chmod ug-s {} +

# The user every container of the project runs as (the chart and the runner
# Job set the same numeric ids), with the home the runner pod mounts.
echo "fondation:x:$uid:$uid:fondation:/home/runner:/usr/sbin/nologin" >>"$root/etc/passwd"
echo "fondation:x:$uid:" >>"$root/etc/group"
echo "fondation:!:1::::::" >>"$root/etc/shadow"
mkdir -p "$root/home/runner" "$root/workspace"
chown "$uid:$uid" "$root/home/runner" "$root/workspace"
