#!/bin/sh
# Turns the numbered migrations into a C array, in the order given (the Makefile sorts them).
set -eu
echo '/* generated from the sql/ migrations by sql/embed.sh; do not edit */'
echo '#include <stddef.h>'
echo '#include "npsd/migrations.h"'
echo 'const struct migration migrations[] = {'
for f in "$@"; do
  name=$(basename "$f" .sql)
  version=$(echo "$name" | sed 's/^0*\([0-9]\)/\1/; s/_.*//')
  printf '  { %s, "%s",\n' "$version" "$name"
  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/    "/; s/$/\\n"/' "$f"
  printf '  },\n'
done
echo '};'
echo 'const size_t migrations_count = sizeof migrations / sizeof migrations[0];'
