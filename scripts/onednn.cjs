// Where oneDNN's headers and library are: asked by scripts/install.cjs and by binding.gyp (`node scripts/onednn.cjs
// include|lib`). SELFSUP_ONEDNN_PREFIX names an install prefix (headers in PREFIX/include, library in PREFIX/lib);
// otherwise the system prefixes that Debian/Ubuntu (apt: libdnnl-dev) and Homebrew (onednn) install into.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const HEADER = join('oneapi', 'dnnl', 'dnnl.hpp');

function candidates(env = process.env) {
  if (env.SELFSUP_ONEDNN_PREFIX) return [env.SELFSUP_ONEDNN_PREFIX];
  return ['/usr', '/usr/local', '/opt/homebrew', '/opt/homebrew/opt/onednn', '/usr/local/opt/onednn'];
}

/** The prefix whose include/ holds oneDNN's C++ header, or null. */
function findPrefix(env = process.env) {
  for (const prefix of candidates(env)) if (existsSync(join(prefix, 'include', HEADER))) return prefix;
  return null;
}

module.exports = { findPrefix, candidates, HEADER };

if (require.main === module) {
  const prefix = findPrefix();
  const what = process.argv[2];
  // gyp splits this output on whitespace; print nothing extra for the system prefix, which the compiler searches anyway
  if (prefix === null || prefix === '/usr') process.stdout.write('');
  else if (what === 'include') process.stdout.write(join(prefix, 'include'));
  else if (what === 'lib') process.stdout.write(`-L${join(prefix, 'lib')} -Wl,-rpath,${join(prefix, 'lib')}`);
}
