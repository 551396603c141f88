import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '../..');

describe('the npm package', () => {
  it('packs dist/ with working main, types and exports, and loads from another project', () => {
    const work = mkdtempSync(join(tmpdir(), 'rlock-pack-'));
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
        cwd: root,
        encoding: 'utf8',
      }),
    ) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'package.json']),
    );
    expect(
      files.some((f) => f.startsWith('test/') || f.startsWith('lib/') || f.startsWith('sample/')),
    ).toBe(false);

    const project = join(work, 'consumer');
    const installed = join(project, 'node_modules', 'nestjs-rlock');
    mkdirSync(installed, { recursive: true });
    execFileSync('tar', [
      '-xzf',
      join(work, packed.filename),
      '-C',
      installed,
      '--strip-components=1',
    ]);
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(existsSync(join(installed, manifest.main))).toBe(true);
    expect(existsSync(join(installed, manifest.types))).toBe(true);

    writeFileSync(
      join(project, 'check.js'),
      `const lib = require('nestjs-rlock');
       const names = ['RLockModule', 'RLockService', 'RemoteLock', 'AcquireTimeoutError', 'LeaseExpiredError', 'createRLockMigration'];
       for (const name of names) if (typeof lib[name] !== 'function') throw new Error(name + ' missing');
       const dynamic = lib.RLockModule.forRoot({ tableName: 'locks' });
       if (!dynamic.providers.length) throw new Error('no providers');
       console.log('ok');`,
    );
    // Peer dependencies come from this repository's node_modules, as an app's own would.
    const out = execFileSync(process.execPath, ['check.js'], {
      cwd: project,
      encoding: 'utf8',
      env: { ...process.env, NODE_PATH: join(root, 'node_modules') },
    });
    expect(out.trim()).toBe('ok');
  }, 60_000);
});
