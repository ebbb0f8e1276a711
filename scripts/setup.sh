#!/usr/bin/env bash
# Installs everything previrt needs on a fresh Debian machine (run as root, or with sudo
# available): the 32-bit gcc toolchain and binutils for guests, QEMU as the reference machine,
# qemu-i386 (qemu-user) to run gcc -m32 test programs on hosts whose kernel cannot execute i386
# programs (test/hostI386.ts), the BIOS images v86 needs for the CPU benchmark, Debian's Linux
# 6.1 source and what building it (tinyconfig + guest/linux/kernel.config, `npm run guest:linux`)
# needs: bc, bison, flex, lz4, xz-utils (no libelf or libssl: a 32-bit kernel without modules
# builds neither objtool nor the signing tools), tcpdump (a test reads `bench netperf --pcap`'s
# captures with it), chromium (the lab's browser test drives it; no browser download), and the npm
# packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gcc >/dev/null || need+=(gcc)
command -v as >/dev/null || need+=(binutils)
command -v objdump >/dev/null || need+=(binutils)
command -v make >/dev/null || need+=(make)
[ -e /usr/lib32/crt1.o ] || [ -e /usr/lib/gcc/x86_64-linux-gnu/12/32/crtbegin.o ] || need+=(gcc-multilib)
command -v qemu-system-i386 >/dev/null || need+=(qemu-system-x86)
command -v qemu-i386 >/dev/null || need+=(qemu-user)
[ -e /usr/share/seabios/bios.bin ] || need+=(seabios)
[ -e /usr/share/vgabios/vgabios.bin ] || need+=(vgabios)
[ -e /usr/src/linux-source-6.1.tar.xz ] || need+=(linux-source-6.1)
command -v bc >/dev/null || need+=(bc)
command -v bison >/dev/null || need+=(bison)
command -v flex >/dev/null || need+=(flex)
command -v lz4 >/dev/null || need+=(lz4)
command -v xz >/dev/null || need+=(xz-utils)
command -v flock >/dev/null || need+=(util-linux)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  sudo=''
  [ "$(id -u)" -eq 0 ] || sudo='sudo'
  echo "setup: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo 'setup: installing npm packages'
  npm ci --no-audit --no-fund >/dev/null
fi
# The compiled command (dist/, what bin/previrt.mjs runs for a fast start): built when missing or
# older than src/.
if ! node -e "import('./bin/stale.mjs').then((m) => process.exit(m.staleReason() ? 1 : 0))"; then
  echo 'setup: compiling the previrt command (npm run build)'
  npm run --silent build
fi
