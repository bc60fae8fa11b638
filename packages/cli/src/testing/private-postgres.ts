import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/*
 * A PostgreSQL server of a test's own, for faults that would disturb every other test on the
 * shared one: stopping and starting the whole server. It is made with the server's own tools
 * (`initdb`, `pg_ctl`) in a scratch folder, listens on 127.0.0.1 only, and is gone with
 * `destroy`. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */

const run = promisify(execFile);

/** The folder of PostgreSQL's server programs, or null when this machine has none. */
export async function postgresBinaries(): Promise<string | null> {
  const has = (dir: string) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'));
  try {
    const { stdout } = await run('pg_config', ['--bindir']);
    if (has(stdout.trim())) return stdout.trim();
  } catch {
    // No pg_config on the path: look where Debian puts the server.
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? (await readdir(root)).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((version) => path.join(root, version, 'bin')).find(has);
  return found ?? null;
}

export interface PrivatePostgres {
  /** The `postgres` database of this server. */
  readonly url: string;
  /** Stops the server: `fast` as an operator's restart does, `immediate` as a crash does. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again and resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and removes its files. */
  destroy(): Promise<void>;
}

export async function startPrivatePostgres(bindir: string): Promise<PrivatePostgres> {
  const asRoot = process.getuid?.() === 0;
  const dir = await mkdtemp(path.join(tmpdir(), 'baton-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  // As root: the folder belongs to `postgres`, and its programs run as that user.
  const owner = asRoot ? await userIds('postgres') : null;
  if (owner) await chown(dir, owner.uid, owner.gid);
  const pg = (program: string, args: readonly string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', path.join(bindir, program), ...args])
      : run(path.join(bindir, program), [...args]);

  const port = await freePort();
  await pg('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
  await appendFile(
    path.join(data, 'postgresql.conf'),
    [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = ''`,
      'max_connections = 50',
      'shared_buffers = 32MB',
    ].join('\n'),
  );
  const start = async () => {
    await pg('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
  };
  const stop = async (mode: 'fast' | 'immediate') => {
    await pg('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    async destroy() {
      await stop('immediate').catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** A port nobody listens on now, on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}
