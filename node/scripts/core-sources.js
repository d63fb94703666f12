'use strict';
// Prints the libpagekite core sources for binding.gyp, relative to node/:
// the core list of spec/pagekite.json (the one list CMake and setuptools
// build too: c/src/*.c without the plugin hosts), plus plugins_none.c.
const fs = require('fs');
const path = require('path');

const spec = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'spec', 'pagekite.json'),
  'utf8'));
const files = [...spec.sources.core, spec.sources.plugins.none];
process.stdout.write(files.map((f) => '../' + f).join('\n') + '\n');
