#!/usr/bin/env bash
# The git probe: anything in the repository's git data beyond the start commit. Run in the audited container as
# `bash -c SCRIPT git-probe REPO ONLY_COMMIT COMMIT ROOT` (its text, by forager/integrity/audit/git.py).
# $1 the repository, $2 "1" when HEAD must be the only commit, $3 the commit HEAD must be or sit on ("" for none),
# $4 the filesystem root searched for other repositories.
# Prints "finding<TAB>KIND<TAB>DETAIL" lines, then "done" (a run cut short lacks it).
set -u
cd -- "$1" 2>/dev/null || { echo "cannot enter $1" >&2; exit 2; }
gitdir=$(git rev-parse --absolute-git-dir 2>/dev/null) || { echo "$1 is not a git repository" >&2; exit 2; }
tab=$(printf '\t')
found() { printf 'finding\t%s\t%s\n' "$1" "$2"; }
ancestor() { git merge-base --is-ancestor "$1" HEAD 2>/dev/null; }
if ! head=$(git rev-parse -q --verify 'HEAD^{commit}'); then found head "HEAD names no commit"; echo done; exit 0; fi
if [ "$2" = 1 ]; then
  count=$(git rev-list --count HEAD)
  [ "$count" = 1 ] || found history "HEAD has $count commits in its history; a task's start state is its only commit"
fi
if [ -n "$3" ] && [ "$head" != "$3" ] && [ "$(git rev-parse -q --verify 'HEAD^1' 2>/dev/null)" != "$3" ]; then
  found head "HEAD $head is neither the image's commit $3 nor a commit on top of it"
fi
git for-each-ref --format="%(refname)$tab%(objectname)$tab%(objecttype)" | while IFS=$tab read -r ref sha type; do
  case $ref in refs/stash) kind=stash ;; refs/tags/*) kind=tag ;; refs/remotes/*) kind=remote-ref ;; *) kind=ref ;; esac
  if ! peeled=$(git rev-parse -q --verify "$sha^{commit}" 2>/dev/null); then found "$kind" "$ref points at a $type, not a commit"
  elif ! ancestor "$peeled"; then found "$kind" "$ref -> $peeled is not in HEAD's history"; fi
done
if [ -f "$gitdir/packed-refs" ]; then
  grep -v '^[#^]' "$gitdir/packed-refs" | while read -r sha ref; do
    [ "$(git rev-parse -q --verify "$ref" 2>/dev/null)" = "$sha" ] && continue  # the ref itself: looked at above
    git cat-file -e "$sha" 2>/dev/null || continue  # names an object that is gone: nothing to read
    peeled=$(git rev-parse -q --verify "$sha^{commit}" 2>/dev/null) && ancestor "$peeled" && continue
    found packed-ref "packed-refs keeps $ref at $sha, outside HEAD's history"
  done
fi
if [ -d "$gitdir/logs" ]; then
  find "$gitdir/logs" -type f -size +0c | while read -r log; do
    found reflog "${log#"$gitdir"/} is not empty ($(wc -l < "$log") lines)"
  done
fi
for name in ORIG_HEAD FETCH_HEAD MERGE_HEAD CHERRY_PICK_HEAD REVERT_HEAD BISECT_HEAD REBASE_HEAD AUTO_MERGE; do
  [ -e "$gitdir/$name" ] && found head-file "$name exists: $(head -c 200 "$gitdir/$name" | head -n 1)"
done
for name in rebase-merge rebase-apply; do
  [ -e "$gitdir/$name" ] && found head-file "$name/ exists (an unfinished rebase keeps other commits)"
done
git remote | while read -r remote; do  # credentials in a URL are not copied into the store
  found remote "remote $remote ($(git remote get-url "$remote" 2>/dev/null | sed 's#//[^/@]*@#//***@#'))"
done
[ -s "$gitdir/objects/info/alternates" ] && found alternates "objects are borrowed from $(head -n 1 "$gitdir/objects/info/alternates")"
[ -n "$(ls -A "$gitdir/worktrees" 2>/dev/null)" ] && found worktree "other worktrees: $(ls "$gitdir/worktrees" | tr '\n' ' ')"
git diff --cached --quiet HEAD -- 2>/dev/null || found index "the index differs from HEAD: $(git diff --cached --name-only HEAD -- | head -n 5 | tr '\n' ' ')"
git fsck --connectivity-only --unreachable --no-reflogs --no-progress 2>/dev/null | head -n 100 | while read -r what type sha; do
  [ "$what" = unreachable ] && found unreachable "$type $sha is stored but nothing reaches it"
done
base=${4%/}
find "$base/" -mindepth 1 -maxdepth 1 ! -name proc ! -name sys ! -name dev -print0 | xargs -0 -r -I{} \
  find {} -type f -name HEAD 2>/dev/null | while read -r file; do
  dir=${file%/HEAD}
  [ -d "$dir/objects" ] && [ -d "$dir/refs" ] || continue
  case "$dir/" in "$gitdir"/*) continue ;; esac
  case "$dir/" in "$1"/*) git ls-files --error-unmatch -- "${file#"$1"/}" >/dev/null 2>&1 && continue ;; esac
  found other-repo "a git repository at $dir"
done
echo done
