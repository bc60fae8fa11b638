import http from 'node:http';
import { Latencies } from './stats.js';

/** One request of a load run: a JSON body to POST, or a GET without one. */
export interface LoadRequest {
  readonly path: string;
  readonly body?: unknown;
}

export interface LoadOptions {
  /** The server's base URL; load runs only ever target the loopback interface. */
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly concurrency: number;
  /** Requests sent (and not measured) before the measured ones, to warm both sides up. */
  readonly warmup: number;
  /** Stop early after this long, whatever is left: runs are bounded in count and in time. */
  readonly timeLimitMs: number;
}

export interface LoadResult {
  readonly latencies: Latencies;
  /** Requests not answered with 200, warm-up included; they are left out of the latencies. */
  readonly failures: number;
  /** The first failure's status and body, to say what went wrong. */
  readonly firstFailure: string | null;
  readonly elapsedMs: number;
  /** The response bodies of the first `keepBodies` requests, in request order. */
  readonly bodies: unknown[];
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Sends `requests` with `concurrency` clients over kept-alive connections, and measures each
 * request from sending to the last byte of its response with `performance.now()`.
 */
export async function runLoad(
  requests: readonly LoadRequest[],
  options: LoadOptions,
  keepBodies = 0,
): Promise<LoadResult> {
  const base = new URL(options.baseUrl);
  if (!LOOPBACK.has(base.hostname)) throw new Error(`Load runs target 127.0.0.1 only, not ${base.hostname}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const latencies = new Latencies(requests.length);
  const bodies: unknown[] = [];
  let failures = 0;
  let firstFailure: string | null = null;
  const send = (request: LoadRequest, index: number) =>
    new Promise<boolean>((resolve, reject) => {
      const payload = request.body === undefined ? null : Buffer.from(JSON.stringify(request.body));
      const started = performance.now();
      const outgoing = http.request(
        {
          agent,
          host: base.hostname,
          port: base.port,
          method: payload ? 'POST' : 'GET',
          path: request.path,
          headers: {
            authorization: `Bearer ${options.apiKey}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const elapsed = performance.now() - started;
            const text = Buffer.concat(chunks).toString('utf8');
            if (response.statusCode !== 200) {
              failures++;
              firstFailure ??= `${response.statusCode} ${text.slice(0, 500)}`;
              return resolve(false);
            }
            // Only answered requests count: a fast refusal must not pass for a fast answer.
            if (index >= 0) latencies.add(elapsed);
            if (index >= 0 && index < keepBodies) bodies[index] = JSON.parse(text);
            resolve(true);
          });
          response.on('error', reject);
        },
      );
      outgoing.on('error', reject);
      if (payload) outgoing.end(payload);
      else outgoing.end();
    });

  try {
    // Warm-up: the same kind of requests, not measured.
    let next = 0;
    const warmupWorker = async () => {
      while (next < Math.min(options.warmup, requests.length)) await send(requests[next++]!, -1);
    };
    await Promise.all(Array.from({ length: options.concurrency }, warmupWorker));

    const started = performance.now();
    const deadline = started + options.timeLimitMs;
    next = 0;
    const worker = async () => {
      while (next < requests.length && performance.now() < deadline) {
        const index = next++;
        await send(requests[index]!, index);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    return { latencies, failures, firstFailure, elapsedMs: performance.now() - started, bodies };
  } finally {
    agent.destroy();
  }
}
