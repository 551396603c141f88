import { CliError } from '../../lib/cli/cli.error';
import { parseDatabaseUrl, redactText, redactUrl } from '../../lib/cli/database-url';

describe('database URLs on the command line', () => {
  it.each([
    ['postgres://u:secret@h:badport/db', 'postgres://u:***@h:badport/db'],
    ['mysql://root:p@ss@h:99999/db', 'mysql://root:***@h:99999/db'],
    ['mariadb://root:se/cr:et@h:x/db', 'mariadb://root:***@h:x/db'],
    ['postgres://u:my secret@h/db', 'postgres://u:***@h/db'],
    ['postgres://:secret@h/db', 'postgres://:***@h/db'],
    [
      'postgres://h/db?sslmode=require&password=secret',
      'postgres://h/db?sslmode=require&password=***',
    ],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    ['sqlite:/var/lib/locks.db', 'sqlite:/var/lib/locks.db'],
  ])('redacts %s as %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it.each([
    'postgres://u:secret@h:badport/db',
    'postgresql://u:secret@[::1:5432/db',
    'mysql://root:secret@h:99999/db',
    'mariadb://root:secret@h:-1/db',
    'postgres://u:my secret@h:bad/db',
  ])('never shows the password of the unreadable URL %s', (url) => {
    let error: unknown;
    try {
      parseDatabaseUrl(url);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).message).toContain('Cannot read the database URL');
    expect((error as CliError).message).toContain(':***@');
    expect((error as CliError).message).not.toContain('secret');
  });

  it('masks a password query parameter of a readable URL', () => {
    expect(parseDatabaseUrl('postgres://h/db?password=secret').display).toBe(
      'postgres://h/db?password=***',
    );
  });

  it('masks the URLs given on the command line, and any other URL, in a message', () => {
    const url = 'postgres://u:my secret@h/db';
    expect(redactText(`Failed: "${url}" and mysql://a:b@c/d.`, [url])).toBe(
      'Failed: "postgres://u:***@h/db" and mysql://a:***@c/d.',
    );
  });
});
