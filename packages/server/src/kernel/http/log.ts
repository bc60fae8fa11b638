import type { FastifyRequest } from 'fastify';
import { maskCardNumbers } from '../card-numbers.js';

/**
 * A request as its log lines show it (what the HTTP framework logs by default), with any card
 * number in its URL masked: a request that carries one is refused, but it is logged as it
 * arrives. Spaces and dashes written as `+`, `%20` or `%2D` are read as such first.
 */
export function requestForLog(request: FastifyRequest) {
  return {
    method: request.method,
    url: maskCardNumbers(request.url.replaceAll(/\+|%20/gi, ' ').replaceAll(/%2d/gi, '-')),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
