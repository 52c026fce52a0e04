import { GatewayError } from '../errors/index.js';
import {
  type Endpoint,
  isJsonObject,
  type ProxyRequestBody,
  requestRules,
  requiredFieldHints,
} from '../spec/openai.js';

/**
 * Checks the fields the gateway relies on, in the endpoint's declared order, and throws a 400
 * naming the first field that is wrong and what to send instead.
 */
export function validateRequestBody(endpoint: Endpoint, body: unknown): ProxyRequestBody {
  if (!isJsonObject(body)) {
    throw new GatewayError(
      'invalid_body',
      'The request body must be a JSON object, such as {"model": "…", …}.',
    );
  }
  for (const rule of requestRules[endpoint]) {
    const value = body[rule.field];
    if (value === undefined) {
      if (rule.required) {
        const hint = requiredFieldHints[rule.field];
        throw new GatewayError('missing_field', `"${rule.field}" is required${hint ? `: ${hint}` : ''}.`, {
          param: rule.field,
        });
      }
      continue;
    }
    const problem = rule.check(value);
    if (problem !== undefined) {
      // Element problems come as "[2].role must be …", so the param names the element.
      const nested = problem.startsWith('[');
      const space = problem.indexOf(' ');
      const param = nested ? rule.field + problem.slice(0, space) : rule.field;
      const sentence = nested ? problem.slice(space + 1) : problem;
      throw new GatewayError('invalid_field', `"${param}" ${sentence}.`, { param });
    }
  }
  return body as ProxyRequestBody;
}
