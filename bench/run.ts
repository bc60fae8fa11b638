import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * `npm run bench -- <name> [options]` runs `bench/<name>.ts`, whose `main(args)` prints a
 * table. Benchmarks are scripts anyone can run, not tests: they assert nothing about time.
 */

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

interface Benchmark {
  main(args: string[]): Promise<void>;
}

function available(): string[] {
  return readdirSync(BENCH_DIR)
    .filter((file) => file.endsWith('.ts') && file !== 'run.ts' && !file.endsWith('.test.ts'))
    .map((file) => file.slice(0, -'.ts'.length))
    .sort();
}

async function run(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  const names = available();
  if (!name || name === '--help' || !/^[a-z][a-z0-9-]*$/.test(name) || !names.includes(name)) {
    console.error(`Usage: npm run bench -- <name> [options]\nBenchmarks: ${names.join(', ')}`);
    process.exitCode = 2;
    return;
  }
  const file = path.join(BENCH_DIR, `${name}.ts`);
  if (!existsSync(file)) throw new Error(`No benchmark at ${file}`);
  const benchmark = (await import(pathToFileURL(file).href)) as Benchmark;
  await benchmark.main(args);
}

run(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
