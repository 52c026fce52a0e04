import { isAbsolute } from 'node:path';
import { GatewayError } from '../errors/index.js';
import { isJsonObject } from '../spec/openai.js';

/**
 * Reads an admin request's JSON body against the fields an endpoint takes. Unknown fields are
 * refused rather than ignored: a misspelt "sha256" would otherwise skip the check it asked for.
 * Every error is a 400 that names its field.
 */
export class AdminBody {
  readonly #body: Record<string, unknown>;

  constructor(body: unknown, fields: readonly string[]) {
    if (!isJsonObject(body)) throw new GatewayError('invalid_body');
    this.#body = body;
    for (const key of Object.keys(body)) {
      if (!fields.includes(key)) {
        throw new GatewayError(
          'invalid_field',
          `${key} is not a field of this endpoint; it takes ${fields.join(', ')}.`,
          { param: key },
        );
      }
    }
  }

  /** A non-empty string, required unless `optional`. */
  string(field: string, hint: string): string;
  string(field: string, hint: string, optional: 'optional'): string | undefined;
  string(field: string, hint: string, optional?: 'optional'): string | undefined {
    const value = this.#body[field];
    if (value === undefined || value === null) {
      if (optional) return undefined;
      throw new GatewayError('missing_field', `${field} is required: ${hint}.`, { param: field });
    }
    if (typeof value !== 'string' || value.trim() === '') {
      throw new GatewayError('invalid_field', `${field} must be a non-empty string: ${hint}.`, {
        param: field,
      });
    }
    return value;
  }

  /** An absolute path on the server: a relative one would resolve against its working directory. */
  absolutePath(field: string, hint: string): string {
    const value = this.string(field, hint);
    if (!isAbsolute(value)) {
      throw new GatewayError(
        'invalid_field',
        `${field} must be an absolute path on the server ("${value}" is relative): ${hint}.`,
        { param: field },
      );
    }
    return value;
  }

  boolean(field: string): boolean | undefined {
    const value = this.#body[field];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      throw new GatewayError('invalid_field', `${field} must be true or false.`, { param: field });
    }
    return value;
  }
}
