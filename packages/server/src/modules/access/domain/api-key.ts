import { createHash, randomBytes } from 'node:crypto';

/**
 * API key secrets: a recognisable prefix (so secret scanners and people can tell what leaked)
 * and 256 random bits. Only the SHA-256 of a secret is stored: with that much entropy a slow
 * hash adds nothing, and a fast one keeps authentication cheap on every request.
 */
export const API_KEY_PREFIX = 'baton_sk_';
const SECRET_BYTES = 32;
/** Characters of a secret kept to help people recognise a key in a list. */
const HINT_LENGTH = 4;

export interface NewSecret {
  readonly secret: string;
  readonly hash: Buffer;
  readonly hint: string;
}

export function generateSecret(): NewSecret {
  const secret = `${API_KEY_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`;
  return { secret, hash: hashSecret(secret), hint: secret.slice(-HINT_LENGTH) };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Whether `text` has the shape of a Baton secret; anything else is refused without a lookup. */
export function looksLikeSecret(text: string): boolean {
  return text.startsWith(API_KEY_PREFIX) && text.length === API_KEY_PREFIX.length + 43;
}
