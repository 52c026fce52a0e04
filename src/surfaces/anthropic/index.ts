export * from './anthropic-errors.js';
export * from './anthropic-request.js';
export * from './anthropic-response.js';
export * from './anthropic-stream.js';
export * from './count-tokens.js';
