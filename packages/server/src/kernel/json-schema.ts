import { createHash } from 'node:crypto';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { LRUCache } from 'lru-cache';
import { type FieldError, invalid } from './errors.js';

/** Largest JSON Schema accepted from an operator, in characters of its JSON form. */
export const JSON_SCHEMA_SIZE_MAX = 64 * 1024;
const COMPILED_SCHEMAS_MAX = 500;

/*
 * One Ajv instance in strict mode: unknown keywords and ambiguous schemas are errors, so a
 * typo in an operator's schema is caught when it is saved rather than ignored forever.
 * Remote references are never loaded.
 */
const ajv = new Ajv2020({ allErrors: true, strict: true, validateFormats: true });
addFormats.default(ajv);
const compiled = new LRUCache<string, ValidateFunction>({ max: COMPILED_SCHEMAS_MAX });

/**
 * Checks that `schema` is a valid JSON Schema (2020-12) describing an object, and compiles it.
 *
 * @throws DomainError `json_schema.invalid` with the problems found.
 */
export function compileJsonSchema(schema: unknown): ValidateFunction {
  const text = JSON.stringify(schema);
  if (text.length > JSON_SCHEMA_SIZE_MAX) {
    throw invalid('json_schema.invalid', `The schema is larger than ${JSON_SCHEMA_SIZE_MAX} characters.`);
  }
  const hash = createHash('sha256').update(text).digest('hex');
  const cached = compiled.get(hash);
  if (cached) return cached;
  if (typeof schema !== 'object' || schema === null || (schema as { type?: unknown }).type !== 'object') {
    throw invalid('json_schema.invalid', 'The schema must describe an object ("type": "object").', {
      errors: [{ path: '/type', rule: 'const', message: 'must be "object"' }],
    });
  }
  if (!ajv.validateSchema(schema)) {
    throw invalid('json_schema.invalid', 'The schema is not a valid JSON Schema (2020-12).', {
      errors: fieldErrors(ajv.errors ?? []),
    });
  }
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (error) {
    throw invalid('json_schema.invalid', `The schema cannot be used: ${(error as Error).message}`);
  }
  compiled.set(hash, validate);
  return validate;
}

/** Validates `document` and reports each problem per field; an empty list means it conforms. */
export function validateDocument(validate: ValidateFunction, document: unknown): FieldError[] {
  return validate(document) ? [] : fieldErrors(validate.errors ?? []);
}

function fieldErrors(errors: readonly ErrorObject[]): FieldError[] {
  return errors.map((error) => {
    // "required" and "additionalProperties" errors point at the parent; name the field itself.
    const field =
      error.keyword === 'required'
        ? `/${(error.params as { missingProperty: string }).missingProperty}`
        : error.keyword === 'additionalProperties'
          ? `/${(error.params as { additionalProperty: string }).additionalProperty}`
          : '';
    return {
      path: `${error.instancePath}${field}`,
      rule: error.keyword,
      message: error.message ?? 'is not valid',
    };
  });
}
