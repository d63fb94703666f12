'use strict';
// Builds the addon with node-gyp against the headers of the running node, so
// nothing is downloaded: --nodedir is the prefix holding include/node (for a
// packaged node, /usr).  node-gyp is npm's own (npm_config_node_gyp during
// npm install), a node-gyp installed next to this package, or one on PATH.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const { coreTree } = require('./core-sources');

const here = path.join(__dirname, '..');
if (!coreTree()) {
  console.error('pagekite: the libpagekite C core was not found (../c in a checkout, csrc/ in a ' +
    'tarball made by npm pack); install this package from a checkout or from such a tarball');
  process.exit(1);
}

function nodedir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir);
  candidates.push(path.dirname(path.dirname(process.execPath)), '/usr', '/usr/local');
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  return null;
}

function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && fs.existsSync(fromNpm)) return [process.execPath, fromNpm];
  try {
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js', { paths: [here] })];
  } catch (e) {
    // fall through
  }
  const npmBundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm',
    'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (fs.existsSync(npmBundled)) return [process.execPath, npmBundled];
  return ['node-gyp'];
}

const dir = nodedir();
const [cmd, ...pre] = nodeGyp();
const args = [...pre, 'rebuild'];
if (dir) args.push('--nodedir=' + dir);
if (process.env.PAGEKITE_DEBUG_BUILD) args.push('--debug');
// Quiet unless asked: compiler warnings and errors still show.
if (!process.env.PAGEKITE_BUILD_VERBOSE) args.push('--loglevel=warn');
const r = spawnSync(cmd, args, { cwd: here, stdio: 'inherit' });
if (r.error) {
  console.error('pagekite: cannot run node-gyp: ' + r.error.message);
  process.exit(1);
}
process.exit(r.status === null ? 1 : r.status);
