import { GatewayError } from '../errors/index.js';

/**
 * Parses an upstream's answer (a body, or one stream event) that must be a JSON object; anything
 * else is the catalogue's `upstream_bad_response`, naming the target. Shared by every adapter.
 */
export function parseJsonObject(text: string, targetName: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw unreadableAnswer(targetName, 'it is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw unreadableAnswer(targetName, 'it is not a JSON object');
  }
  return value as Record<string, unknown>;
}

/** `upstream_bad_response` saying why the target's answer could not be read. */
export function unreadableAnswer(targetName: string, why: string): GatewayError {
  return new GatewayError('upstream_bad_response', `The answer from "${targetName}" is unreadable: ${why}.`);
}
