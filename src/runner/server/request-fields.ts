import { parseKeepAlive } from '../../config/units.js';
import { GatewayError } from '../../errors/index.js';
import { type Endpoint, requestRules, requiredFieldHints } from '../../spec/openai.js';

/** A 400 naming the field; `problem` finishes the sentence "<param> …". */
export const invalid = (param: string, problem: string) =>
  new GatewayError('invalid_field', `${param} ${problem}.`, { param });

/**
 * Checks a body against the field rules the gateway shares for the endpoint, so the runner refuses
 * what the gateway would, in the same words; the first problem is reported.
 */
export function checkFieldRules(body: Record<string, unknown>, endpoint: Endpoint): void {
  for (const rule of requestRules[endpoint]) {
    const value = body[rule.field];
    if (value === undefined) {
      if (rule.required) {
        const hint = requiredFieldHints[rule.field];
        throw new GatewayError('missing_field', `${rule.field} is required${hint ? `: ${hint}` : ''}.`, {
          param: rule.field,
        });
      }
      continue;
    }
    const problem = rule.check(value);
    if (problem !== undefined) throw invalid(rule.field, problem);
  }
}

/** Ollama's `keep_alive`, in milliseconds (`Infinity` for forever); undefined when not given. */
export function parseKeepAliveField(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const keepAliveMs =
    typeof value === 'string' || typeof value === 'number' ? parseKeepAlive(value) : undefined;
  if (keepAliveMs === undefined) {
    throw invalid(
      'keep_alive',
      'must be a duration such as "5m" or "30s", a number of seconds, 0 to unload after the request, or -1 to keep the model loaded',
    );
  }
  return keepAliveMs;
}
