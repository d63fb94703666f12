'use strict';
// Prints the libpagekite core sources for binding.gyp, relative to node/:
// c/src/*.c without the plugin hosts (plugins_*.c), plus plugins_none.c.
const fs = require('fs');
const path = require('path');

const dir = path.join(__dirname, '..', '..', 'c', 'src');
const files = fs.readdirSync(dir)
  .filter((f) => f.endsWith('.c') && !/^plugins_[a-z]+\.c$/.test(f))
  .sort();
files.push('plugins_none.c');
process.stdout.write(files.map((f) => '../c/src/' + f).join('\n') + '\n');
