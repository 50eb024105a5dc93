#!/bin/sh
# Turns the console's files into C arrays (NAME=FILE pairs), so an installed npsd needs no
# files beside it. '?' is escaped too: "??/" in a script would be a trigraph in C11.
set -eu
echo '/* generated from src/ui/ by src/ui/embed.sh; do not edit */'
echo '#include "npsd/ui_assets.h"'
for pair in "$@"; do
  name=${pair%%=*}
  printf 'static const char %s[] =\n' "$name"
  sed 's/\\/\\\\/g; s/"/\\"/g; s/?/\\?/g; s/^/  "/; s/$/\\n"/' "${pair#*=}"
  echo ';'
done
echo 'const struct ui_assets ui_assets = {'
for pair in "$@"; do
  name=${pair%%=*}
  printf '  .%s = { %s, sizeof %s - 1 },\n' "$name" "$name" "$name"
done
echo '};'
