#!/bin/sh
# Usage: versioned_symbols.sh OBJDUMP BINARY VERSION NAME...
# Passes when BINARY's dynamic symbol table references every NAME at the
# (non-default) VERSION, as a program linked against an old glibc does.
objdump=$1 binary=$2 version=$3
shift 3
dyn=$("$objdump" -T "$binary") || exit 1
status=0
v=$(printf '%s' "$version" | sed 's/\./\\./g')
for name in "$@"; do
    if ! printf '%s\n' "$dyn" | grep -Eq "\\($v\\)[[:space:]]+$name\$"; then
        echo "$binary: no reference to $name@$version" >&2
        status=1
    fi
done
exit $status
