#!/usr/bin/env bash
# npm run guest:linux — the Linux guest (README "Running Linux"):
#   guest/linux/build/bzImage          Debian's linux-source-6.1, tinyconfig + kernel.config
#   guest/linux/build/initramfs.cpio   /init, /bin/netserver, /dev/console (newc, uncompressed)
#   guest/linux/build/apic/bzImage     with `build.sh apic`: the same kernel with the local APIC and
#                                      the I/O APIC (kernel.config, then kernel-apic.config on top)
#   guest/linux/build/afterburned/bzImage (and vmlinux)  with `build.sh afterburned`: the default
#                                      configuration built through the afterburner (gcc -B its `as`
#                                      wrapper, Kbuild unchanged) from a source tree with patches/
#                                      applied
#
# The kernel is built once per configuration: the cache key is the hash of kernel.config, the
# linux-source package's version, gcc's version and KERNEL_RECIPE below. A second run with the
# same key only rebuilds the (small) user programs and the cpio. Builds are serialised with flock,
# so tests that run in parallel wait for one build instead of starting two.
#
# Usage: build.sh [apic|afterburned]. Environment: LINUX_SOURCE (default /usr/src/linux-source-6.1.tar.xz),
# JOBS (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/build
variant=${1:-}
case $variant in
  '') kout=$out prefix=kernel- ;;
  apic) kout=$out/apic prefix=kernel-apic- ;;
  afterburned) kout=$out/afterburned prefix=kernel-afterburned- ;;
  *) echo "guest/linux: unknown variant '$variant' (build.sh [apic|afterburned])" >&2; exit 2 ;;
esac
root=$(cd "$here/../.." && pwd)
# The afterburned variant: the afterburner's `as` wrapper (src/afterburner/bin) behind gcc -B.
wrapper=$root/src/afterburner/bin
# A variant with options of its own has a kernel-VARIANT.config; the afterburned one has none.
confvariant=$variant
[ -f "$here/kernel-$variant.config" ] || confvariant=''
tarball=${LINUX_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
jobs=${JOBS:-2}
# Bump when the way the kernel is built changes (not the options: those are in kernel.config).
KERNEL_RECIPE=1

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [ ! -r "$tarball" ]; then
  echo "guest/linux: $tarball is missing: install Debian's linux-source-6.1 (bash scripts/setup.sh)" >&2
  exit 1
fi
for tool in bc bison flex lz4 make gcc; do
  command -v "$tool" >/dev/null || { echo "guest/linux: '$tool' is missing (bash scripts/setup.sh)" >&2; exit 1; }
done
version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c '%s-%Y' "$tarball")
# The fragment: kernel.config, and for a variant its own file on top (an option the variant sets
# replaces kernel.config's line for it, so the check below holds the merged fragment).
fragment=$out/.fragment${variant:+-$variant}
if [ -n "$confvariant" ]; then
  names=$(grep -oE '^(# )?CONFIG_[A-Za-z0-9_]+' "$here/kernel-$variant.config" | sed 's/^# //' | sort -u)
  { grep -vE "^(# )?($(echo "$names" | paste -sd'|'))[= ]" "$here/kernel.config"
    cat "$here/kernel-$variant.config"; } >"$fragment"
else
  cp "$here/kernel.config" "$fragment"
fi
key=$({ cat "$fragment"; echo "linux-source $version"; gcc -dumpfullversion; echo "recipe $KERNEL_RECIPE"; } |
  sha256sum | cut -c1-16)
src=$out/linux-source-$version
cc=gcc
if [ "$variant" = afterburned ]; then
  [ -x "$wrapper/as" ] || { echo "guest/linux: the afterburner's as wrapper is missing ($wrapper/as)" >&2; exit 1; }
  # The patches (in name order) make a source tree of their own, named by their hash; the key
  # also holds what the wrapper runs (the afterburner's sources but verify-annotations' own, and
  # the wrapper), so a changed afterburner rebuilds.
  patches=$( (find "$here/patches" -maxdepth 1 -name "*.patch" 2>/dev/null || true) | sort)
  # The tree also gets previrt's annotation header, which the patch includes as
  # <asm/previrt_afterburn.h>.
  header=$root/src/afterburner/include/afterburn.h
  phash=$(cat $patches "$header" | sha256sum | cut -c1-16)
  src=$out/linux-source-$version-patched-$phash
  key=$({ echo "$key"; echo "patches $phash"
    find "$root/src/afterburner" -maxdepth 2 -type f ! -name '*.test.ts' ! -name '*.md' \
      ! -name verify.ts ! -name elf.ts ! -name opcode.ts | sort | xargs cat; } |
    sha256sum | cut -c1-16)
  cc="gcc -B$wrapper"
fi

build_kernel() {
  local obj=$out/$prefix$key t0=$SECONDS p
  echo "guest/linux: building the kernel${variant:+ ($variant)} (configuration $key; a few minutes, once)"
  if [ ! -f "$src/Makefile" ]; then
    rm -rf "$src.tmp"
    # A patched tree starts as hard links to the plain one when there is one (Kbuild with O=
    # writes nothing into the source tree); each file a patch touches becomes a copy first.
    if [ "$src" != "$out/linux-source-$version" ] && [ -f "$out/linux-source-$version/Makefile" ]; then
      cp -al "$out/linux-source-$version" "$src.tmp"
    else
      mkdir -p "$src.tmp"
      tar xf "$tarball" -C "$src.tmp" --strip-components=1
    fi
    for p in ${patches:-}; do
      for f in $(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p"); do
        [ ! -f "$src.tmp/$f" ] || { cp "$src.tmp/$f" "$src.tmp/$f.copy" && mv "$src.tmp/$f.copy" "$src.tmp/$f"; }
      done
      patch -s -p1 -d "$src.tmp" <"$p" || { echo "guest/linux: $p does not apply to $tarball" >&2; exit 1; }
    done
    [ -z "${header:-}" ] || cp "$header" "$src.tmp/arch/x86/include/asm/previrt_afterburn.h"
    mv "$src.tmp" "$src"
  fi
  rm -rf "$obj"
  mkdir -p "$obj"
  # Reproducible: the version string (uname -v, the boot banner) names no host and no time.
  local kmake=(make -s -C "$src" O="$obj" ARCH=i386 CC="$cc" KBUILD_BUILD_USER=previrt KBUILD_BUILD_HOST=previrt
    KBUILD_BUILD_TIMESTAMP='2026-01-01' KBUILD_BUILD_VERSION=1)
  "${kmake[@]}" tinyconfig >/dev/null
  "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment" >/dev/null
  "${kmake[@]}" olddefconfig >/dev/null
  # Every option of the fragment must have taken: a dependency Kconfig refused is an error here,
  # not a kernel that silently lacks a driver.
  local bad=0 line name
  while IFS= read -r line; do
    case $line in
      CONFIG_*=*) name=${line%%=*} ;;
      "# CONFIG_"*" is not set") name=${line#\# }; name=${name%% *} ;;
      *) continue ;;
    esac
    if ! grep -qxF "$line" "$obj/.config"; then
      echo "guest/linux: kernel.config${variant:+ + kernel-$variant.config} asks for '$line', the configuration has '$(grep -E "^(# )?$name[= ]" "$obj/.config" || echo "$name: no such option")'" >&2
      bad=1
    fi
  done <"$fragment"
  [ $bad -eq 0 ] || exit 1
  # The afterburner's report: one line per assembled file (sites by kind, padding).
  local report=''
  [ "$variant" != afterburned ] || report=$obj/afterburn-report.txt
  # The afterburned build's `as` runs are served by one afterburner server (src/afterburner/
  # server.ts): Node starts once, not once per source file. Without it (it did not start) the
  # wrapper starts Node each time, slower but the same objects.
  local server_pid='' portfile=$obj/.as-server
  if [ "$variant" = afterburned ]; then
    node "$wrapper/server.mjs" --port-file "$portfile" --jobs "$jobs" --idle 900 &
    server_pid=$!
    # shellcheck disable=SC2064 # the pid is known now
    trap "kill $server_pid 2>/dev/null || true" EXIT
    for _ in $(seq 300); do [ -s "$portfile" ] || ! kill -0 "$server_pid" 2>/dev/null && break; sleep 0.1; done
    if [ -s "$portfile" ]; then
      export PREVIRT_AS_SERVER
      PREVIRT_AS_SERVER=$(cat "$portfile")
    else
      echo "guest/linux: the afterburner server did not start; every as run starts Node instead" >&2
    fi
  fi
  PREVIRT_AFTERBURN_REPORT=$report "${kmake[@]}" -j"$jobs" bzImage
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    trap - EXIT
    unset PREVIRT_AS_SERVER
  fi
  mkdir -p "$kout"
  cp "$obj/arch/x86/boot/bzImage" "$kout/bzImage.tmp"
  [ "$variant" != afterburned ] || cp "$obj/vmlinux" "$kout/vmlinux"
  cp "$obj/.config" "$kout/kernel.full-config"
  mv "$kout/bzImage.tmp" "$kout/bzImage"
  echo "$key" >"$kout/bzImage.key"
  # This variant's older configurations' objects are not needed any more (the source stays for
  # the next one; the other variant's objects stay too).
  find "$out" -maxdepth 1 -regextype posix-extended -regex ".*/$prefix[0-9a-f]{16}" \
    ! -name "$prefix$key" -exec rm -rf {} +
  [ "$variant" != afterburned ] || find "$out" -maxdepth 1 -regextype posix-extended \
    -regex ".*/linux-source-.*-patched-[0-9a-f]{16}" ! -path "$src" -exec rm -rf {} +
  echo "guest/linux: kernel built in $((SECONDS - t0)) s: $kout/bzImage"
}

if [ ! -f "$kout/bzImage" ] || [ "$(cat "$kout/bzImage.key" 2>/dev/null)" != "$key" ]; then
  build_kernel
fi

# The user programs and the initramfs (quick; make rebuilds only what changed).
make -s --no-print-directory -C "$here" programs
node "$here/cpio.mjs" "$out/initramfs.cpio.tmp" \
  dir:/bin dir:/dev dir:/proc \
  char:/dev/console:5:1 \
  file:/init:"$out/user/init" \
  file:/bin/netserver:"$out/user/netserver"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
