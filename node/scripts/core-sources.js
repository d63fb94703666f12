'use strict';
// Where the libpagekite core is, for binding.gyp and scripts/build.js, and
// the core sources to compile: the core list of spec/pagekite.json (the one
// list CMake and setuptools build too: c/src/*.c without the plugin hosts),
// plus plugins_none.c.
//
// Two layouts:
// - a checkout: this package is the repository's node/, beside c/ and spec/;
// - a tarball made by `npm pack` (or an install of it): the prepack script
//   (scripts/vendor.js) copied c/src, c/include and spec/pagekite.json into
//   csrc/ (csrc/src, csrc/include, csrc/pagekite.json).
//
//   node scripts/core-sources.js            the .c files, relative to node/
//   node scripts/core-sources.js --include  the public header directory
//   node scripts/core-sources.js --src      the core's private header directory
const fs = require('fs');
const path = require('path');

const here = path.join(__dirname, '..');

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (e) {
    return false;
  }
}

function sameDir(a, b) {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch (e) {
    return false;
  }
}

// { c: dir holding src/ and include/, spec: the spec JSON }, both relative
// to node/, or null when neither layout is complete.
function coreTree() {
  const up = path.join(here, '..');
  if (sameDir(path.join(up, 'node'), here) && isFile(path.join(up, 'c', 'include', 'pagekite.h')) &&
      isFile(path.join(up, 'spec', 'pagekite.json'))) {
    return { c: '../c', spec: '../spec/pagekite.json', checkout: true };
  }
  if (isFile(path.join(here, 'csrc', 'include', 'pagekite.h')) &&
      isFile(path.join(here, 'csrc', 'pagekite.json'))) {
    return { c: 'csrc', spec: 'csrc/pagekite.json', checkout: false };
  }
  return null;
}

function coreSources(tree) {
  const spec = JSON.parse(fs.readFileSync(path.join(here, tree.spec), 'utf8'));
  return [...spec.sources.core, spec.sources.plugins.none]
    .map((f) => tree.c + '/' + f.replace(/^c\//, ''));
}

module.exports = { coreTree, coreSources };

if (require.main === module) {
  const tree = coreTree();
  if (!tree) {
    console.error('pagekite: the libpagekite core was not found: neither ../c with ../spec (a ' +
      'checkout) nor csrc/ (a packed tarball) in ' + here);
    process.exit(1);
  }
  const arg = process.argv[2];
  let out;
  if (arg === '--include') out = [tree.c + '/include'];
  else if (arg === '--src') out = [tree.c + '/src'];
  else out = coreSources(tree);
  process.stdout.write(out.join('\n') + '\n');
}
