#!/bin/sh
# Print the code size of an archive (text, data, bss summed over its objects)
# and fail if text is not below the limit (bytes).
set -eu
lib=$1
limit=$2
size -t "$lib"
text=$(size -t "$lib" | awk 'END { print $1 }')
echo "o2lite: text ${text} bytes at -Os (limit ${limit})"
[ "$text" -lt "$limit" ]
