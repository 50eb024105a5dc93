#!/bin/sh
# Turns the console's files into C arrays (NAME=FILE pairs), byte for byte, so that an
# installed npsd needs no files beside it. Each array ends in a NUL that is not served.
set -eu
echo '/* generated from src/ui/ by src/ui/embed.sh; do not edit */'
echo '#include "npsd/ui_assets.h"'
for pair in "$@"; do
  name=${pair%%=*}
  printf 'static const unsigned char %s[] = {\n' "$name"
  od -An -v -tx1 "${pair#*=}" | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
  echo '0 };'
done
echo 'const struct ui_assets ui_assets = {'
for pair in "$@"; do
  name=${pair%%=*}
  printf '  .%s = { %s, sizeof %s - 1 },\n' "$name" "$name" "$name"
done
echo '};'
