export * from './chat-request.js';
export * from './runner-metrics.js';
export * from './runner-server.js';
