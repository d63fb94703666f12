'use strict';
// npm pack's prepack / postpack step: the tarball must build without the
// repository, so copy the core into csrc/ (listed in package.json "files"):
// ../c/src/*.{c,h} -> csrc/src, ../c/include/*.h -> csrc/include,
// ../spec/pagekite.json -> csrc/pagekite.json.  `--clean` removes csrc/
// again after packing.  Outside a checkout (an unpacked tarball) it does
// nothing: csrc/ is already there.
const fs = require('fs');
const path = require('path');
const { coreTree } = require('./core-sources');

const here = path.join(__dirname, '..');
const dest = path.join(here, 'csrc');
const tree = coreTree();

if (!tree || !tree.checkout) {
  if (!tree) {
    console.error('pagekite: no libpagekite core to vendor (neither ../c nor csrc/)');
    process.exit(1);
  }
  process.exit(0);
}
fs.rmSync(dest, { recursive: true, force: true });
if (process.argv[2] === '--clean') process.exit(0);

function copy(fromDir, toDir, exts) {
  fs.mkdirSync(toDir, { recursive: true });
  let n = 0;
  for (const name of fs.readdirSync(fromDir).sort()) {
    if (!exts.includes(path.extname(name))) continue;
    fs.copyFileSync(path.join(fromDir, name), path.join(toDir, name));
    n++;
  }
  return n;
}

const c = path.join(here, tree.c);
const n = copy(path.join(c, 'src'), path.join(dest, 'src'), ['.c', '.h']) +
  copy(path.join(c, 'include'), path.join(dest, 'include'), ['.h']);
fs.copyFileSync(path.join(here, tree.spec), path.join(dest, 'pagekite.json'));
console.error('pagekite: vendored ' + n + ' core files and the spec into csrc/');
