#!/usr/bin/env bash
# Builds another commit's sd-nspawn for SD_BENCH_NSPAWN_BEFORE and prints its bin:
#   SD_BENCH_NSPAWN_BEFORE=$(tools/bench/start/build-before.sh COMMIT) npm run bench:start -- --overhead
# The worktree gets a node_modules of its own whose @sd/* links point at that
# commit's packages: a link to this checkout's node_modules would bundle this
# checkout's @sd/sys and @sd/basic into the older sd-nspawn. Remove it with
#   git worktree remove --force DIR
set -euo pipefail
commit=${1:?usage: build-before.sh COMMIT [DIR]}
dir=${2:-/tmp/sd-bench-before}
root=$(git rev-parse --show-toplevel)
git -C "$root" worktree remove --force "$dir" 2>/dev/null || true
git -C "$root" worktree add --detach "$dir" "$commit" >/dev/null
mkdir "$dir/node_modules"
for entry in "$root"/node_modules/* "$root"/node_modules/.bin; do
  [ "$(basename "$entry")" = @sd ] || ln -s "$entry" "$dir/node_modules/"
done
# Relative links (../../packages/NAME): copied, they resolve inside the worktree.
cp -a "$root/node_modules/@sd" "$dir/node_modules/"
for pkg in sys basic networkd-veth gpt nspawn; do
  [ -d "$dir/packages/$pkg" ] || continue
  (cd "$dir/packages/$pkg" && npx tsup >/dev/null) || { echo "build-before: building $pkg at $commit failed" >&2; exit 1; }
done
echo "$dir/packages/nspawn/dist/sd-nspawn.cjs"
