#!/usr/bin/env bash
# The npm tarball (issue 19 item 4): `npm pack ./node` makes pagekite-*.tgz
# carrying the addon's sources, the core's C sources and headers (csrc/) and
# the type declarations, and nothing of the tests or a build; the checkout is
# left as it was.  `npm install ./pagekite-*.tgz` in a fresh folder outside
# the repository compiles the addon from the tarball alone; from there
# `require('pagekite')` works and the binding's Connector flies a kite
# through pk_relay.  Node (>= 18, with its headers) and npm are the
# machine's, as for ./run test: not installed here.
# debs: gcc g++ make python3 libuv1-dev libssl-dev zlib1g-dev curl
source "$(dirname "$0")/lib.sh"
T="$PK_STAGE_TMP"
unset NODE_PATH LD_LIBRARY_PATH
export npm_config_cache="$T/npm-cache" npm_config_update_notifier=false npm_config_fund=false \
  npm_config_audit=false
mkdir -p "$T/pack" "$T/app"
command -v npm >/dev/null || pk_fail "npm not found"
version="$(node -p "require('$SRC/node/package.json').version")"

before="$(cd "$SRC" && git status --porcelain --ignored node 2>/dev/null || true)"
pk_log "npm pack $SRC/node"
(cd "$T/pack" && npm pack "$SRC/node" >"$T/pack.log" 2>&1) \
  || { tail -30 "$T/pack.log" >&2; pk_fail "npm pack failed"; }
tgz="$T/pack/pagekite-$version.tgz"
[ -f "$tgz" ] || pk_fail "no $tgz: $(ls "$T/pack")"
after="$(cd "$SRC" && git status --porcelain --ignored node 2>/dev/null || true)"
[ "$before" = "$after" ] || pk_fail "npm pack left files in the checkout: $(diff <(echo "$before") <(echo "$after"))"

pk_log "tarball contents"
tar tzf "$tgz" | sed 's|^package/||' | sort >"$T/files.txt"
for need in package.json index.js index.d.ts binding.d.ts binding.gyp README.md \
            scripts/build.js scripts/core-sources.js src/addon.c src/glue_generated.c \
            csrc/include/pagekite.h csrc/src/api.c csrc/src/internal.h csrc/src/plugins_none.c \
            csrc/pagekite.json; do
  grep -qx "$need" "$T/files.txt" || pk_fail "the tarball lacks $need"
done
junk="$(grep -E '^(test|test-support|build|node_modules)/|\.(o|node|a)$|^package-lock\.json$|^generate_glue\.py$' "$T/files.txt" || true)"
[ -z "$junk" ] || pk_fail "the tarball carries junk: $junk"
# Every core source the spec lists is in the tarball.
node -e '
const spec = require(process.argv[1]);
const have = new Set(require("fs").readFileSync(process.argv[2], "utf8").split("\n"));
const miss = [...spec.sources.core, spec.sources.plugins.none]
  .map((f) => f.replace(/^c\//, "csrc/")).filter((f) => !have.has(f));
if (miss.length) { console.error("missing: " + miss.join(" ")); process.exit(1); }
' "$SRC/spec/pagekite.json" "$T/files.txt" || pk_fail "the tarball lacks core sources"
pk_log "$(wc -l <"$T/files.txt") files in $(basename "$tgz")"

pk_log "npm install the tarball in a fresh folder outside the repository"
cp "$tgz" "$T/app/"
cd "$T/app"
printf '{ "name": "pk-install-app", "version": "1.0.0", "private": true }\n' >package.json
nice -n 10 npm install --nodedir=/usr --no-audit --no-fund "./pagekite-$version.tgz" >"$T/install.log" 2>&1 \
  || { tail -40 "$T/install.log" >&2; pk_fail "npm install of the tarball failed"; }
[ -f node_modules/pagekite/build/Release/pagekite.node ] || pk_fail "the addon was not built"
grep -q '/csrc/src/api\.o' node_modules/pagekite/build/pkcore.target.mk \
  || pk_fail "the core was not compiled from the tarball's csrc/"
if grep -rq -- "$SRC/c/" node_modules/pagekite/build/*.mk; then pk_fail "the build read the repository's c/"; fi
[ -L node_modules/pagekite ] && pk_fail "node_modules/pagekite is a link, not an installed copy"
[ -f node_modules/pagekite/index.d.ts ] || pk_fail "index.d.ts is not installed"

node -e '
const pk = require("pagekite");
const path = require("path");
const where = require.resolve("pagekite");
if (!where.startsWith(path.join(process.cwd(), "node_modules") + path.sep)) throw new Error("pagekite from " + where);
if (where.startsWith(process.argv[1] + path.sep)) throw new Error("pagekite from the repository");
if (require("pagekite/package.json").version !== process.argv[2]) throw new Error("version mismatch");
if (typeof pk.Connector !== "function" || typeof pk.Relay !== "function") throw new Error("no Connector/Relay");
console.error("require(\"pagekite\"): " + pk.VERSION + " from " + path.dirname(where));
' "$SRC" "$version" || pk_fail "require('pagekite') smoke failed"

secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
pk_relay npm.localhost "$secret"
cat >kite.js <<'EOF'
const { Connector, Flags } = require('pagekite');
const [relayPort, kite, secret, originPort] = process.argv.slice(2);
(async () => {
  const c = new Connector({ appId: 'install-npm', flags: Flags.WITH_IPV4 | Flags.WITH_IPV6 });
  c.addKite({ proto: 'http', name: kite, secret, originHost: '127.0.0.1', originPort: +originPort });
  c.addFrontend('127.0.0.1', +relayPort);
  await c.start();
  await c.waitFor('FLYING', 30000);
  console.log('flying');
  setTimeout(async () => { await c.stop(); }, 120000);
})().catch((e) => { console.error(e); process.exit(1); });
EOF
node kite.js "$RELAY_PORT" npm.localhost "$secret" "$ORIGIN_PORT" >"$T/kite.log" 2>&1 &
PK_PIDS+=($!)
pk_expect_page "$RELAY_PORT" npm.localhost "$tok" || { cat "$T/kite.log" >&2; pk_fail "no kite through the npm install"; }
pk_log "npm tarball: packed, installed outside the repository, kite flew"
