// Other runs may rebuild dist/ while the bench is running: the bench and its workers load
// a private copy taken under the build lock (the one the test setup builds under).
const { execFileSync } = require('node:child_process');
const { cpSync, existsSync, mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');

const ROOT = resolve(__dirname, '..', '..');
const BUILD_LOCK = '/tmp/nestjs-rlock-build.lock';

/**
 * Builds dist/ (unless `build` is false) and copies it, both under the build lock when
 * `flock` exists; sets the environment the workers read.
 */
function snapshotDist(build = true) {
  const dist = join(ROOT, 'dist');
  const target = join(mkdtempSync(join(tmpdir(), 'rlock-bench-dist-')), 'dist');
  const steps = `${build ? 'npx tsc -p tsconfig.build.json && ' : ''}cp -r "${dist}" "${target}"`;
  let hasFlock = true;
  try {
    execFileSync('flock', ['--version'], { stdio: 'ignore' });
  } catch {
    hasFlock = false;
  }
  if (hasFlock) {
    execFileSync('flock', [BUILD_LOCK, 'sh', '-c', steps], { cwd: ROOT, stdio: 'inherit' });
  } else {
    if (build)
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
    cpSync(dist, target, { recursive: true });
  }
  if (!existsSync(join(target, 'index.js'))) throw new Error(`No build in ${dist}.`);
  process.env.RLOCK_BENCH_DIST = target;
  // The copy lives outside the project: let it resolve the project's node_modules.
  process.env.NODE_PATH = [join(ROOT, 'node_modules'), process.env.NODE_PATH]
    .filter(Boolean)
    .join(require('node:path').delimiter);
  require('node:module').Module._initPaths();
  return () => rmSync(join(target, '..'), { recursive: true, force: true });
}

module.exports = { snapshotDist };
